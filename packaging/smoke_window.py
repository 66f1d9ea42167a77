"""Start clapdesk as a user would, on a real X server (Xvfb, Qt's xcb platform), and use it.

    python packaging/smoke_window.py                               # the app in this environment
    python packaging/smoke_window.py --app dist/clapdesk/clapdesk  # the PyInstaller bundle

It runs the app's own binary throughout: `index` a folder of generated sounds with `--model
FOLDER` (a tiny random CLAP built in code), then opens the window and types into it with xdotool
(real X key events, no test hooks): a text search, Down to audition the first result, Ctrl+M for
sound-alikes, Down again, a screenshot, Ctrl+Q. Audition goes through PortAudio to an ALSA `file`
device, and each sound is a distinct number of tone bursts, so what was heard names the file
that played; the app's command line, asked the same questions, says which file that must be.

It fails on a missing library (ldd, or Qt's own message), any traceback, a window later than
--max-window-s after the start, a wrong or silent audition, or an unclean quit. A text search that
the app refuses with a plain message (a model health check) is reported, not failed, as long as
sound-alikes still work. Prints one JSON object; needs Xvfb and xdotool
(`bash packaging/install.sh --test`) and this environment's torch and transformers for the model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUERY = "punchy kick"
RATE = 44100
BURST_S = 0.08
# Words that only appear when something is broken; the app logs nothing like them otherwise.
BROKEN = ("Traceback", "Could not load the Qt platform plugin", "cannot open shared object",
          "error while loading shared libraries", "Fatal Python error", "qt.qpa.plugin",
          "Segmentation fault")


class SmokeFailure(Exception):
    pass


def write_sounds(folder: Path) -> dict[str, int]:
    """Five files, file n being n tone bursts: the burst count survives any resampling."""
    folder.mkdir(parents=True)
    bursts = {}
    for n, name in enumerate(("one tone", "two tones", "three tones", "four tones",
                              "five tones"), start=1):
        t = np.arange(int(BURST_S * RATE)) / RATE
        burst = 0.5 * np.sin(2 * np.pi * (600 + 150 * n) * t)
        gap = np.zeros(int(BURST_S * RATE))
        wave = np.concatenate([np.concatenate([burst, gap]) for _ in range(n)] + [gap] * 2)
        sf.write(folder / f"{name}.wav", wave.astype(np.float32), RATE)
        bursts[f"{name}.wav"] = n
    return bursts


def count_bursts(raw: bytes) -> int:
    """Runs of sound separated by silence in s16 stereo frames (a moving max bridges the sine's
    zero crossings; the gaps between bursts are far longer than that window)."""
    samples = np.frombuffer(raw[: len(raw) - len(raw) % 4], dtype="<i2").reshape(-1, 2)[:, 0]
    loud = np.abs(samples.astype(np.float32)) / 32768.0 > 0.02
    if not loud.any():
        return 0
    window = 200
    padded = np.concatenate([loud, np.zeros(window, bool)])
    envelope = np.lib.stride_tricks.sliding_window_view(padded, window).any(axis=1)
    return int(np.count_nonzero(np.diff(envelope.astype(np.int8)) == 1) + envelope[0])


class Smoke:
    def __init__(self, app: str, work: Path, max_window_s: float) -> None:
        self.app, self.work, self.max_window_s = app, work, max_window_s
        self.report: dict[str, object] = {"app": app}
        self.env = dict(os.environ)
        for name, sub in (("CLAPDESK_LIBRARY", "library"), ("CLAPDESK_CONFIG", "config"),
                          ("CLAPDESK_CACHE", "cache"), ("HOME", "home"),
                          ("XDG_CONFIG_HOME", "home/.config"), ("XDG_DATA_HOME", "home/.local"),
                          ("XDG_CACHE_HOME", "home/.cache")):
            (work / sub).mkdir(parents=True, exist_ok=True)
            self.env[name] = str(work / sub)
        self.env["HF_HUB_OFFLINE"] = "1"
        self.env.pop("QT_QPA_PLATFORM", None)
        self.capture = work / "capture.raw"
        (work / "asoundrc").write_text(
            'pcm.!default { type plug; slave { pcm "smoke_capture"; format S16_LE; channels 2 } }\n'
            f'pcm.smoke_capture {{ type file; slave.pcm "null"; file "{self.capture}"; '
            'format "raw" }\n')
        self.env["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{work / 'asoundrc'}"

    # -- the command line ---------------------------------------------------------------------
    def cli(self, *args: str, library: Path | None = None) -> tuple[int, dict | None, str]:
        env = dict(self.env, CLAPDESK_LIBRARY=str(library or self.work / "library"))
        done = subprocess.run([self.app, "--model", str(self.model), *args, "--json"], env=env,
                              capture_output=True, text=True, timeout=300)
        self.check_log(done.stderr, f"clapdesk {args[0]}")
        result = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None
        return done.returncode, result, done.stderr.strip()

    def check_log(self, text: str, what: str) -> None:
        for word in BROKEN:
            if word in text:
                raise SmokeFailure(f"{what} printed '{word}':\n{text[-4000:]}")

    def prepare(self) -> None:
        import modelfactory

        # A text tower fitted for a few seconds passes the app's model health check; a random
        # one (all an older test helper builds) may have its text searches refused.
        build = getattr(modelfactory, "build_trained_clap", modelfactory.build_clap)
        self.model = build(self.work / "model")
        self.bursts = write_sounds(self.work / "samples")
        code, result, err = self.cli("index", str(self.work / "samples"))
        if code != 0 or result is None or result.get("indexed") != len(self.bursts):
            raise SmokeFailure(f"clapdesk index: exit {code}, {result}, {err}")
        # Asked of a copy, so the window's search history (and its completer) starts empty.
        answers = self.work / "answers"
        shutil.copytree(self.work / "library", answers)
        code, result, err = self.cli("search", QUERY, library=answers)
        self.expected_search = Path(result["results"][0]["path"]).name if result else None
        self.report["text_search_cli"] = "ok" if result else f"refused: {err}"
        if code not in (0, 1) or (code == 1 and not err.startswith("clapdesk: ")):
            raise SmokeFailure(f"clapdesk search: exit {code}: {err}")
        self.answers = answers

    # -- the X server and the window ----------------------------------------------------------
    def start_x(self) -> None:
        if not shutil.which("Xvfb") or not shutil.which("xdotool"):
            raise SmokeFailure("Xvfb and xdotool are needed: bash packaging/install.sh --test")
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0",
                                      "1280x800x24", "-nolisten", "tcp", "-noreset"],
                                     pass_fds=(write,), stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as pipe:
            display = pipe.readline().strip()
        if not display:
            raise SmokeFailure("Xvfb did not start")
        self.env["DISPLAY"] = f":{display}"

    def xdotool(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], env=self.env, capture_output=True,
                              text=True, timeout=30).stdout.strip()

    def open_window(self) -> None:
        self.log_path = self.work / "app.log"
        env = dict(self.env, QT_QPA_PLATFORM="xcb")
        with open(self.log_path, "w") as log:
            started = time.monotonic()
            self.proc = subprocess.Popen([self.app, "--model", str(self.model)], env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < 30:
            found = self.xdotool("search", "--onlyvisible", "--name", "^clapdesk")
            if found:
                self.window = found.splitlines()[0]
                break
            if self.proc.poll() is not None:
                raise SmokeFailure(f"the app exited ({self.proc.returncode}) before its window:\n"
                                   + self.log_path.read_text()[-4000:])
            time.sleep(0.02)
        else:
            raise SmokeFailure("no window within 30 s")
        self.report["window_s"] = round(time.monotonic() - started, 3)
        if self.report["window_s"] > self.max_window_s:  # type: ignore[operator]
            raise SmokeFailure(f"window after {self.report['window_s']} s "
                               f"(at most {self.max_window_s} s)")
        self.wait_idle()
        self.report["settled_s"] = round(time.monotonic() - started, 3)  # library + model loaded
        self.xdotool("windowfocus", "--sync", self.window)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Until the app and its decoder processes use under 5 % of a core for a whole second."""
        app = psutil.Process(self.proc.pid)

        def busy() -> float:
            total = 0.0
            for p in [app, *app.children(recursive=True)]:
                try:
                    times = p.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            return total

        deadline, quiet_since, last = time.monotonic() + timeout, None, busy()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            if self.proc.poll() is not None:
                raise SmokeFailure(f"the app exited ({self.proc.returncode}):\n"
                                   + self.log_path.read_text()[-4000:])
            now = busy()
            if now - last < 0.25 * 0.05:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 1.0:
                    return
            else:
                quiet_since = None
            last = now
        raise SmokeFailure(f"the app was still busy after {timeout} s")

    def audition(self) -> int:
        """Press Down; return how many bursts were heard."""
        offset = self.capture.stat().st_size if self.capture.exists() else 0
        self.xdotool("key", "Down")
        deadline, heard, stable_since = time.monotonic() + 15, 0, None
        while time.monotonic() < deadline:
            time.sleep(0.1)
            raw = self.capture.read_bytes()[offset:] if self.capture.exists() else b""
            bursts = count_bursts(raw)
            if bursts and bursts == heard:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 0.7:
                    return bursts
            else:
                heard, stable_since = bursts, None
        return heard

    def named(self, bursts: int) -> str | None:
        return next((name for name, n in self.bursts.items() if n == bursts), None)

    def use_window(self) -> None:
        self.xdotool("key", "ctrl+f")
        self.xdotool("type", "--delay", "20", QUERY)
        self.xdotool("key", "Return")
        self.wait_idle()
        played = self.named(self.audition())
        if played is None:
            raise SmokeFailure("Down after a search played nothing recognisable")
        if self.expected_search is not None and played != self.expected_search:
            raise SmokeFailure(f"the first search result played {played}; "
                               f"`clapdesk search` ranks {self.expected_search} first")
        self.report["search_played"] = played
        self.wait_idle()
        code, similar, err = self.cli("similar", str(self.work / "samples" / played),
                                      library=self.answers)
        if similar is None:
            raise SmokeFailure(f"clapdesk similar: exit {code}: {err}")
        self.xdotool("key", "ctrl+m")
        self.wait_idle()
        alike = self.named(self.audition())
        expected = Path(similar["results"][0]["path"]).name
        if alike != expected:
            raise SmokeFailure(f"the first sound-alike played {alike}; "
                               f"`clapdesk similar` ranks {expected} first")
        self.report["similar_played"] = alike

    def screenshot(self, out: Path) -> None:
        code = (
            "import json, sys\n"
            "from PySide6.QtGui import QGuiApplication, QColor\n"
            "app = QGuiApplication([])\n"
            "image = app.primaryScreen().grabWindow(0).toImage()\n"
            "image.save(sys.argv[1], 'PNG')\n"
            "seen = {image.pixel(x, y) for x in range(0, image.width(), 7)"
            " for y in range(0, image.height(), 7)}\n"
            "print(json.dumps({'width': image.width(), 'colours': len(seen)}))\n")
        env = dict(self.env, QT_QPA_PLATFORM="xcb")
        done = subprocess.run([sys.executable, "-c", code, str(out)], env=env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SmokeFailure(f"screenshot failed: {done.stderr[-2000:]}")
        shot = json.loads(done.stdout.splitlines()[-1])
        if shot["colours"] < 20:  # a blank or unpainted screen has one or two
            raise SmokeFailure(f"the screenshot shows no painted window ({shot})")
        self.report["screenshot"] = {"path": str(out), **shot}

    def quit(self) -> None:
        started = time.monotonic()
        self.xdotool("key", "ctrl+q")
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired as exc:
            raise SmokeFailure("Ctrl+Q did not close the app within 20 s") from exc
        self.report["quit_s"] = round(time.monotonic() - started, 3)
        log = self.log_path.read_text()
        self.check_log(log, "the app")
        if code != 0:
            raise SmokeFailure(f"the app exited with {code}:\n{log[-4000:]}")

    def close(self) -> None:
        for proc in (getattr(self, "proc", None), getattr(self, "xvfb", None)):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def unresolved_libraries(app: str) -> list[str]:
    """What ldd cannot find for Qt's xcb plugin, as the app will load it."""
    app_path = Path(shutil.which(app) or app).resolve()
    bundle = app_path.parent / "_internal"
    if bundle.is_dir():
        plugin = bundle / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        env = dict(os.environ, LD_LIBRARY_PATH=str(bundle))
    else:
        python = app_path.parent / "python"  # a console script beside its interpreter
        if not python.exists():  # or elsewhere: its first line names it
            python = Path(app_path.read_text(errors="replace").splitlines()[0][2:].strip())
        found = subprocess.run([str(python), "-c", "import PySide6; print(PySide6.__path__[0])"],
                               capture_output=True, text=True)
        plugin = Path(found.stdout.strip()) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        env = dict(os.environ)
    if not plugin.exists():
        return [f"{plugin} (the plugin itself)"]
    done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, env=env)
    return sorted({line.split()[0] for line in done.stdout.splitlines() if "not found" in line})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=str(Path(sys.executable).parent / "clapdesk"),
                        help="the clapdesk binary to run (default: this environment's)")
    parser.add_argument("--screenshot", type=Path, default=None, help="PNG to write")
    parser.add_argument("--max-window-s", type=float, default=2.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="clapdesk-smoke-"))
    smoke = Smoke(args.app, work, args.max_window_s)
    started = time.monotonic()
    try:
        missing = unresolved_libraries(args.app)
        if missing:
            raise SmokeFailure("Qt's xcb plugin misses " + ", ".join(missing))
        smoke.prepare()
        smoke.start_x()
        smoke.open_window()
        smoke.use_window()
        smoke.screenshot(args.screenshot or work / "screenshot.png")
        smoke.quit()
    except SmokeFailure as exc:
        smoke.report["failed"] = str(exc)
    finally:
        smoke.close()
        smoke.report["total_s"] = round(time.monotonic() - started, 1)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(smoke.report))
    if "failed" in smoke.report:
        print(f"smoke_window: {smoke.report['failed']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
