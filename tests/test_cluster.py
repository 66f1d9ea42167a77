"""Cluster indexing on a real local Ray, and importing its shards into a library."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# Ray's node address is then the loopback one, so that every Ray server of the test listens on
# 127.0.0.1 only (read when ray is imported; checked by test_ray_listens_on_loopback_only).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
try:
    import fsspec  # noqa: F401
    import pyarrow  # noqa: F401
    import ray
except ImportError:
    pytest.skip("the cluster extra is not installed (pip install 'clapdesk[cluster]'; "
                "install.sh --test installs it): the Ray tests need it", allow_module_level=True)

import psutil
import pyarrow.parquet as pq
from conftest import tone, write_sound

from clapdesk.cli import main
from clapdesk.core.cluster import shards
from clapdesk.core.cluster.importer import import_shards
from clapdesk.core.cluster.pipeline import cluster_index
from clapdesk.core.library import Library
from clapdesk.core.store import user_tags

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    """A real Ray on this machine: two CPUs, no dashboard, every listener on 127.0.0.1."""
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             configure_logging=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive of real audio files: one-shots, loops of several windows, rates, stereo, a
    byte-identical copy and a damaged file."""
    root = tmp_path_factory.mktemp("archive") / "Archive"
    specs = [("Kicks/kick_01.wav", 0.6, 44100, 60, 1), ("Kicks/kick_02.wav", 0.4, 48000, 70, 1),
             ("Kicks/kick_03.wav", 1.2, 22050, 55, 2), ("Pads/warm_pad.wav", 12.0, 48000, 220, 2),
             ("Pads/dark_pad.flac", 6.0, 96000, 110, 1), ("Loops/drum_loop_90.wav", 25.0, 44100, 80, 1),
             ("Loops/bass_loop.wav", 8.0, 44100, 45, 2), ("Vox/vocal_chop.wav", 2.0, 44100, 440, 1),
             ("Vox/breath.wav", 0.3, 44100, 900, 1), ("FX/riser.wav", 15.0, 32000, 330, 2),
             ("FX/hit.aiff", 0.8, 44100, 150, 1)]
    for i, (name, seconds, rate, freq, channels) in enumerate(specs):
        write_sound(root / name, tone(seconds, rate, freq, seed=i, channels=channels), rate)
    shutil.copyfile(root / "Kicks/kick_01.wav", root / "Kicks/kick_01 copy.wav")
    (root / "FX/broken.wav").write_bytes(b"RIFF\x00\x10\x00\x00WAVEjunk" + b"\x01" * 5000)
    return root


@pytest.fixture(scope="module")
def local_library(archive: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same archive indexed locally, as on a producer's laptop."""
    library = Library(tmp_path_factory.mktemp("local"), model=str(tiny_model))
    report = library.index_folders([str(archive)])
    assert report.indexed == 12 and len(report.failed) == 1
    yield library
    library.close()


@pytest.fixture(scope="module")
def first_run(local_ray, archive: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("shards") / "run"
    report = cluster_index([str(archive)], str(out), model=str(tiny_model), workers=1,
                           files_per_shard=3)
    return out, report


def _rows(library: Library) -> dict[str, tuple[bytes, bytes, tuple]]:
    """path -> (feature bytes, vector bytes, analysis columns) of every indexed file."""
    catalog, key = library.catalog, library.model_key
    out = {}
    for record in catalog.files():
        if record.error:
            continue
        _, feats = catalog.features(key, [record.id])
        _, vectors = catalog.vectors(key, [record.id])
        analysis = (record.duration, record.sample_rate, record.channels, record.format,
                    record.bpm, record.key, record.kind, record.peak_db, record.loudness_db,
                    record.brightness, record.onset_rate)
        out[record.path] = (feats[0].tobytes(), vectors[0].tobytes(), analysis)
    return out


def _shard_vectors(folder: Path) -> dict[bytes, bytes]:
    out = {}
    for path in sorted(folder.glob("shard-*.parquet")):
        table = pq.read_table(path)
        for p, v in zip(table.column("path").to_pylist(), table.column("vector").to_pylist()):
            if v is not None:
                out[p] = np.asarray(v, np.float32).tobytes()
    return out


def test_imported_vectors_equal_a_local_index_byte_for_byte(first_run, local_library, archive,
                                                            tiny_model, tmp_path):
    out, report = first_run
    assert report.files == 13 and report.embedded == 12 and report.written == report.shards
    assert [p for p, _ in report.failed] == [str(archive / "FX/broken.wav")]
    home = Library(tmp_path / "imported", model=str(tiny_model))
    try:
        result = import_shards(home, [str(out)])
        assert (result.added, result.failed, result.rows) == (12, 1, 13)
        mine, theirs = _rows(home), _rows(local_library)
        assert mine.keys() == theirs.keys() and len(mine) == 12
        for path in theirs:
            assert mine[path][0] == theirs[path][0], f"feature of {path} differs"
            assert mine[path][1] == theirs[path][1], f"vector of {path} differs"
            assert mine[path][2] == theirs[path][2], f"analysis of {path} differs"
        # Automatic and name tags as local indexing gives them; the failure is listed too.
        ids = {r.path: r.id for r in home.catalog.files()}
        local_ids = {r.path: r.id for r in local_library.catalog.files()}
        for path in theirs:
            tags = home.catalog.tags_of([ids[path]])[ids[path]]
            local = local_library.catalog.tags_of([local_ids[path]])[local_ids[path]]
            if "kick_01" in path:
                # Locally the second of two identical files takes its twin's vector and no
                # automatic tags; on the cluster each is embedded, so both have them.
                assert {t for t in tags if t[1] != "auto"} == {t for t in local if t[1] != "auto"}
                assert set(local) <= set(tags)
            else:
                assert tags == local, path
        assert [p for p, _ in home.catalog.failures()] == [str(archive / "FX/broken.wav")]
        # The vector index took them: a file's own vector finds the file first.
        index = home.vector_index()
        probe = np.frombuffer(theirs[str(archive / "Pads/warm_pad.wav")][1], np.float32)
        assert index.query(probe, 1)[0][0] == ids[str(archive / "Pads/warm_pad.wav")]
        assert len(index) == 12
    finally:
        home.close()


def _ray_workers(title: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(title in part for part in (process.info["cmdline"] or [])):
            found.append(process)
    return found


def test_a_worker_killed_mid_run_is_retried(first_run, local_ray, archive, tiny_model, tmp_path):
    out = tmp_path / "killed"
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["report"] = cluster_index([str(archive)], str(out), model=str(tiny_model),
                                              workers=1, files_per_shard=3)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    killed: list[int] = []
    deadline = time.monotonic() + 240
    # The model actor, while it exists: killed once it has started on the shards.
    while runner.is_alive() and not killed and time.monotonic() < deadline:
        for process in _ray_workers("EmbedShard"):
            if not any(out.glob("shard-*.parquet")) and not process.cpu_percent(0.05):
                continue
            at_kill = len(list(out.glob("shard-*.parquet")))
            process.send_signal(signal.SIGKILL)
            killed.append(process.pid)
            break
        time.sleep(0.02)
    runner.join(300)
    assert killed, "no model actor was seen to kill"
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == "zombie"
    # Every shard was written all the same, with the vectors of the undisturbed run.
    assert at_kill < report.shards == report.written
    assert _shard_vectors(out) == _shard_vectors(first_run[0])


def test_a_killed_decode_task_is_retried(first_run, local_ray, archive, tiny_model, tmp_path):
    out = tmp_path / "killed-task"
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["report"] = cluster_index([str(archive)], str(out), model=str(tiny_model),
                                          workers=1, files_per_shard=3)

    runner = threading.Thread(target=run)
    runner.start()
    killed: list[int] = []
    while runner.is_alive() and not killed:
        for process in _ray_workers("_Decode"):  # a worker process running a decode task
            process.send_signal(signal.SIGKILL)
            killed.append(process.pid)
            break
        time.sleep(0.005)
    runner.join(300)
    assert killed, "no decode task was seen to kill"
    report = outcome["report"]
    assert report.written == report.shards
    assert _shard_vectors(out) == _shard_vectors(first_run[0])


def test_a_rerun_writes_only_the_missing_shards(first_run, local_ray, archive, tiny_model,
                                                tmp_path):
    out = tmp_path / "rerun"
    shutil.copytree(first_run[0], out)
    names = sorted(p.name for p in out.glob("shard-*.parquet"))
    assert len(names) >= 3
    lost = out / names[1]
    before = _shard_vectors(out)
    lost.unlink()  # as if the driver died before this shard was written
    (out / f".{names[1]}.1234.tmp").write_bytes(b"PAR1 half a shard")  # and left a scrap
    stamps = {n: (out / n).stat().st_mtime_ns for n in names if n != lost.name}
    report = cluster_index([str(archive)], str(out), model=str(tiny_model), workers=1)
    assert (report.written, report.present) == (1, len(names) - 1)
    assert lost.is_file()
    assert {n: (out / n).stat().st_mtime_ns for n in stamps} == stamps
    assert _shard_vectors(out) == before
    # A third run has nothing to do, and does not even start the pipeline.
    again = cluster_index([str(archive)], str(out), model=str(tiny_model), workers=1)
    assert (again.written, again.present) == (0, len(names))
    # A file changed since: only its shard is written again, and replaces the old one.
    touched = archive / "Vox/breath.wav"
    stamp = touched.stat()
    os.utime(touched, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    try:
        changed = cluster_index([str(archive)], str(out), model=str(tiny_model), workers=1)
    finally:
        os.utime(touched, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert (changed.written, changed.present) == (1, len(names) - 1)
    now = sorted(p.name for p in out.glob("shard-*.parquet"))
    assert len(now) == len(names) and len(set(now) - set(names)) == 1


def test_shards_of_another_model_or_preprocessing_are_refused(first_run, tiny_model, tmp_path):
    source = sorted(first_run[0].glob("shard-*.parquet"))
    for field, value, words in (("model_commit", "0" * 40, "was made with the model"),
                                ("preprocessing", "clapdesk-pre/0 window=5s", "other preprocessing")):
        folder = tmp_path / field
        folder.mkdir()
        for path in source:
            shutil.copyfile(path, folder / path.name)
        table = pq.read_table(source[-1])
        info = json.loads(table.schema.metadata[b"clapdesk"])
        info[field] = value
        pq.write_table(table.replace_schema_metadata({"clapdesk": json.dumps(info)}),
                       folder / source[-1].name)
        library = Library(tmp_path / f"lib-{field}", model=str(tiny_model))
        try:
            with pytest.raises(shards.ShardError) as refused:
                import_shards(library, [str(folder)])
            assert words in str(refused.value) and source[-1].name in str(refused.value)
            assert "Nothing was imported" in str(refused.value)
            assert library.catalog.count_files() == 0  # not even the good shards
        finally:
            library.close()


def test_import_maps_paths_keeps_user_tags_and_newer_rows(local_ray, archive, tiny_model,
                                                          tmp_path, capsys):
    # The archive as the cluster mounts it, and as it is mounted at home, indexed there before.
    cluster_side = tmp_path / "mnt" / "archive"
    home = tmp_path / "Volumes" / "Archive"
    shutil.copytree(archive, cluster_side)  # copy2: same sizes and mtimes
    shutil.copytree(archive, home)
    library_dir = tmp_path / "home-library"
    library = Library(library_dir, model=str(tiny_model))
    library.index_folders([str(home)])
    # The kick at home was touched since the cluster's copy was made: the library's row is newer.
    later = os.stat(home / "Kicks/kick_02.wav").st_mtime_ns + 10**9
    os.utime(home / "Kicks/kick_02.wav", ns=(later, later))
    library.index_folders([str(home)])
    pad = library.catalog.file_by_path(home / "Pads/warm_pad.wav")
    kick = library.catalog.file_by_path(home / "Kicks/kick_02.wav")
    user_tags.set_user_tags(library.catalog, [pad.id, kick.id], ["my pad"])
    library.catalog.add_favourite(pad.id)
    _, old_vectors = library.catalog.vectors(library.model_key, [pad.id])
    library.close()
    # The pad was replaced since, on the archive and at home alike (a newer mtime).
    changed = tone(12.0, 48000, 523, seed=42, channels=2)
    write_sound(cluster_side / "Pads/warm_pad.wav", changed, 48000)
    write_sound(home / "Pads/warm_pad.wav", changed, 48000)
    stamp = os.stat(cluster_side / "Pads/warm_pad.wav").st_mtime_ns
    os.utime(home / "Pads/warm_pad.wav", ns=(stamp, stamp))
    out = tmp_path / "shards"
    assert main(["cluster", "index", str(cluster_side), "--ray", "local", "--out", str(out),
                 "--model", str(tiny_model), "--files-per-shard", "3", "--json"]) == 0
    capsys.readouterr()
    assert main(["--library", str(library_dir), "--model", str(tiny_model), "import",
                 str(out), "--map", f"{cluster_side}={home}", "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    # 13 rows: the pad updated, the kick kept (the library's is newer), the damaged file's
    # failure recorded again, the other ten unchanged.
    assert (merged["updated"], merged["older_kept"], merged["added"], merged["failed"],
            merged["unchanged"]) == (1, 1, 0, 1, 10)
    library = Library(library_dir, model=str(tiny_model))
    try:
        catalog = library.catalog
        again = catalog.file_by_path(home / "Pads/warm_pad.wav")
        assert again.id == pad.id and again.mtime_ns == stamp  # the same row, updated
        _, new_vectors = catalog.vectors(library.model_key, [pad.id])
        assert new_vectors[0].tobytes() != old_vectors[0].tobytes()
        assert user_tags.user_tags(catalog, [pad.id, kick.id]) == {pad.id: ["my pad"],
                                                                   kick.id: ["my pad"]}
        assert catalog.favourites() == [pad.id]
        assert catalog.file_by_path(home / "Kicks/kick_02.wav").mtime_ns == later
        assert not any(str(cluster_side) in r.path for r in catalog.files())  # all mapped
        # The library at home sees its files as indexed: nothing left to do.
        report = library.index_folders([str(home)])
        assert (report.indexed, report.unchanged) == (0, 13)
    finally:
        library.close()


def test_files_the_catalog_has_are_left_out_and_copies_take_their_twins_vector(
        local_ray, local_library, archive, tiny_model, tmp_path):
    # The cluster mounts the archive elsewhere; a kick was copied under a new name there.
    cluster_side = tmp_path / "mnt" / "Archive"
    shutil.copytree(archive, cluster_side)
    shutil.copyfile(cluster_side / "Kicks/kick_02.wav", cluster_side / "Kicks/renamed kick.wav")
    catalog = local_library.paths.catalog
    report = cluster_index([str(cluster_side)], str(tmp_path / "shards"), model=str(tiny_model),
                           catalog=str(catalog), path_map=shards.PathMap([f"{cluster_side}={archive}"]))
    # Twelve files unchanged (not read at all); the damaged one is tried again, and the copy
    # is hashed, found in the catalog, and not embedded.
    assert (report.files, report.unchanged, report.embedded, report.known_content) == (14, 12, 0, 1)
    assert [p for p, _ in report.failed] == [str(cluster_side / "FX/broken.wav")]
    # Imported into (a copy of) that library, the copy gets its twin's vector.
    shutil.copytree(local_library.paths.root, tmp_path / "library",
                    ignore=shutil.ignore_patterns("*.lock"))
    library = Library(tmp_path / "library", model=str(tiny_model))
    try:
        merged = import_shards(library, [str(tmp_path / "shards")],
                               shards.PathMap([f"{cluster_side}={archive}"]))
        assert (merged.copied, merged.added) == (1, 0)
        copy = library.catalog.file_by_path(archive / "Kicks/renamed kick.wav")
        twin = library.catalog.file_by_path(archive / "Kicks/kick_02.wav")
        _, vectors = library.catalog.vectors(library.model_key, [copy.id, twin.id])
        assert vectors[0].tobytes() == vectors[1].tobytes()
        assert library.vector_index().query(vectors[0], 2)[0][0] in (copy.id, twin.id)
        assert len(library.vector_index()) == 13
    finally:
        library.close()


def test_ray_listens_on_loopback_only(local_ray):
    import ipaddress

    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    ours = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    listening = [c for c in psutil.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert len(listening) >= 3  # the GCS, the raylet and this driver at least
    for connection in listening:
        address = ipaddress.ip_address(connection.laddr.ip)
        mapped = getattr(address, "ipv4_mapped", None)
        assert (mapped or address).is_loopback, (connection, psutil.Process(connection.pid).name())


def test_path_maps():
    paths = shards.PathMap(["/mnt/archive=/Volumes/Archive", "/mnt/archive/sfx=/Volumes/SFX"])
    assert paths.apply("/mnt/archive/kicks/a.wav") == "/Volumes/Archive/kicks/a.wav"
    assert paths.apply("/mnt/archive/sfx/b.wav") == "/Volumes/SFX/b.wav"
    assert paths.apply("/mnt/archived/c.wav") == "/mnt/archived/c.wav"  # not a prefix of a name
    assert paths.reverse().apply("/Volumes/SFX/b.wav") == "/mnt/archive/sfx/b.wav"
    with pytest.raises(shards.ShardError, match="FROM=TO"):
        shards.PathMap(["/mnt/archive"])
