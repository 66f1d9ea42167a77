"""Audition: a sample plays the instant its row is selected.

API (call from the GUI thread):

    player = Player(parent=None, runner=None)  # the app's TaskRunner runs its decode lanes
    player.play(path, start=0.0)   # cached audio starts at once; a cold file decodes off-thread
    player.stop()
    player.toggle(path)            # stops `path` if it is playing, else plays it
    player.seek(seconds)           # jumps; when stopped, plays the current file from there
    player.set_loop(bool); player.set_volume(0.0..1.0)
    player.set_device(name_or_index | None)   # None: the system's default output
    player.predecode(paths)        # decode the next rows ahead so arrowing down plays instantly
    player.decoded(path) -> (data, rate) | None  # cached audio, never decodes (for the waveform)
    player.load(path) -> (data, rate)            # cached or decoded now: call it off the GUI thread
    player.available               # False once we know there is no usable output device
    player.is_playing, player.current_path
    player.last_start_latency      # seconds from the latest play() to the first callback that
                                   # carried its audio; None until that callback has run
    player.close()                 # on exit: stops, closes the stream, ends the decode threads
    player.play_buffer(path, data, rate, ready=None, start_at=None) -> bool
                                   # plays audio at hand (a render); `ready` frames of it so far
                                   # (set_ready(data, n) as more arrives); `start_at`: the
                                   # perf_counter() second its first frame should be heard
    player.hold(path)              # a render of `path` is coming: silence, and wait for it
    player.playing_frame(data) -> int | None  # where the voice playing `data` is, else None
    player.first_sound_at, player.start_padding  # when the latest sound reached the DAC; the
                                   # silence written before it to start on its moment

Signals: started(str path), stopped(), position(float seconds, ~30 Hz while playing),
error(str message). Without an output device the player says so once through `error` and
every call stays a harmless no-op, so the rest of the app works unchanged.

Playback is a `sounddevice.OutputStream` with a callback reading from the decoded array, so a
start costs no decoding and no file I/O; the stream is kept open between plays while the rate
and device stay the same. A cold file is decoded on a worker thread and then
started on the GUI thread, so every signal comes from the GUI thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import CancelledError, Future
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from clapdesk.core.audition.audio_cache import CACHE_BYTES, AudioCache
from clapdesk.core.audition.voice import Voice
from clapdesk.core.ingest.audio import DecodeError, read_for_playback
from clapdesk.gui import portaudio
from clapdesk.gui.workers import TaskRunner

POSITION_INTERVAL_MS = 33  # ~30 Hz playhead updates
# Predecoding is a guess about what plays next; a huge file is not worth the memory on a guess.
PREDECODE_MAX_FILE_BYTES = 64 * 1024 * 1024
PREDECODE_AHEAD = 4
# A little above PortAudio's "low" so a busy GUI thread holding the GIL does not cause clicks.
OUTPUT_LATENCY = 0.03

PLAY_LANE, AHEAD_LANE = "play", "ahead"


class Player(QObject):
    started = Signal(str)
    stopped = Signal()
    position = Signal(float)
    error = Signal(str)
    # A cold decode finished (emitted on the decode thread, handled on the GUI thread, so
    # started/stopped/position always come from one thread, in order).
    _cold_ready = Signal(int, str, object, float, float)

    def __init__(self, parent: QObject | None = None, cache_bytes: int = CACHE_BYTES,
                 runner: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self.cache = AudioCache(cache_bytes)
        # One lane for what the user asked to hear, another for guesses, so a click never
        # waits behind predecoding. The app's runner owns them (a player without one, as in a
        # test, owns its own runner).
        self._runner = runner if runner is not None else TaskRunner(self)
        self._urgent = self._runner.lane(PLAY_LANE)
        self._ahead = self._runner.lane(AHEAD_LANE)
        self._inflight: dict[str, Future[tuple[np.ndarray, int]]] = {}
        self._ahead_pending: dict[str, Future[tuple[np.ndarray, int]]] = {}
        self._urgent_pending: dict[str, Future[tuple[np.ndarray, int]]] = {}
        self._futures_lock = threading.Lock()

        self._voice: Voice | None = None
        self._voice_lock = threading.Lock()  # shared with the audio callback; held briefly
        self._stream: Any = None
        self._stream_key: tuple[Any, int, int] | None = None
        self._stream_ending = False  # the callback has asked PortAudio to stop
        self._stream_lock = threading.RLock()

        self._request = 0  # bumped by every play/stop so a late cold decode does not start
        self._pending_path: str | None = None
        self._current_path: str | None = None
        self._loop = False
        self._volume = 1.0
        self._device: int | str | None = None
        self._unavailable: str | None = None
        self._error_told = False
        self._last_latency: float | None = None
        self._closed = False

        self._timer = QTimer(self)
        self._timer.setInterval(POSITION_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._cold_ready.connect(self._decoded_for_play, Qt.ConnectionType.QueuedConnection)
        # Initialising PortAudio can take tens of milliseconds: do it before the first click.
        self._ahead.submit(portaudio.load)

    # ----------------------------------------------------------------- public API
    @property
    def available(self) -> bool:
        if self._unavailable is None and self._output_device_info() is None:
            return False
        return self._unavailable is None

    @property
    def is_playing(self) -> bool:
        voice = self._voice
        return self._pending_path is not None or (voice is not None and not voice.finished)

    @property
    def current_path(self) -> str | None:
        return self._current_path

    @property
    def last_start_latency(self) -> float | None:
        return self._last_latency

    def play(self, path: str | os.PathLike[str], start: float = 0.0) -> None:
        requested_at = time.perf_counter()
        path = os.fspath(path)
        self._request += 1
        request = self._request
        self._current_path = path
        self._last_latency = None
        if self._unavailable is not None or self._closed:
            return
        cached = self.cache.get(path)
        if cached is not None:
            self._pending_path = None
            self._begin(request, path, cached, start, requested_at)
        else:
            self._pending_path = path
            with self._voice_lock:
                self._voice = None  # the previous row falls silent while this one decodes
            self._cancel_queued_plays(keep=path)
            future = self._decode(path, urgent=True)
            future.add_done_callback(
                lambda f: self._cold_ready.emit(request, path, f, start, requested_at))
        self._timer.start()

    def play_buffer(self, path: str, data: np.ndarray, rate: int, ready: int | None = None,
                    start_at: float | None = None, requested_at: float | None = None) -> bool:
        """Play `data` as `path` (a render). False when the output cannot take `rate` as is:
        a buffer still filling cannot be resampled, so the caller waits for all of it.
        `requested_at`: when the producer asked (last_start_latency counts from there)."""
        requested_at = requested_at if requested_at is not None else time.perf_counter()
        self._request += 1
        self._current_path, self._last_latency, self._pending_path = path, None, None
        if self._unavailable is not None or self._closed:
            return True
        if ready is not None:
            with self._stream_lock:
                stream = self._stream_for(rate)
                if stream is not None and int(stream.samplerate) != rate:
                    return False
        self._begin(self._request, path, (data, rate), 0.0, requested_at, ready, start_at)
        self._timer.start()
        return True

    def hold(self, path: str) -> None:
        """`path` is on its way (being rendered): what plays falls silent, as for a cold decode,
        and is_playing/current_path say `path` until play_buffer or stop."""
        self._request += 1
        self._current_path, self._pending_path, self._last_latency = path, path, None
        with self._voice_lock:
            self._voice = None
        self._timer.start()

    def set_ready(self, data: np.ndarray, frames: int | None) -> None:
        """More of the buffer playing as `data` is rendered (None: all of it)."""
        voice = self._voice
        if voice is not None and voice.data is data:
            voice.ready = frames

    def playing_frame(self, data: np.ndarray) -> int | None:
        voice = self._voice
        return voice.pos if voice is not None and voice.data is data else None

    @property
    def start_padding(self) -> float | None:
        """Seconds of silence written before the latest sound, to start it on its moment."""
        voice = self._voice
        return voice.pad_frames_total / voice.rate if voice is not None else None

    @property
    def first_sound_at(self) -> float | None:
        """perf_counter() second the latest sound's first frame reached the DAC."""
        voice = self._voice
        return voice.sounded_at if voice is not None else None

    def stop(self) -> None:
        self._request += 1
        was_playing = self.is_playing
        self._pending_path = None
        with self._voice_lock:
            self._voice = None  # the callback writes silence and ends the stream
        self._timer.stop()
        if was_playing:
            self.stopped.emit()

    def toggle(self, path: str | os.PathLike[str]) -> None:
        path = os.fspath(path)
        if self.is_playing and self._current_path == path:
            self.stop()
        else:
            self.play(path)

    def seek(self, seconds: float) -> None:
        voice = self._voice
        if voice is not None and not voice.finished:
            voice.pos = int(np.clip(seconds * voice.rate, 0, len(voice.data)))
        elif self._current_path is not None:
            self.play(self._current_path, start=seconds)

    def set_loop(self, loop: bool) -> None:
        self._loop = bool(loop)

    def set_volume(self, volume: float) -> None:
        self._volume = float(np.clip(volume, 0.0, 1.0))

    def set_device(self, device: int | str | None) -> None:
        """Choose the output; a new choice gets a fresh chance (and a fresh error if it fails)."""
        self.stop()
        with self._stream_lock:
            self._close_stream()
            self._device = device
            self._unavailable = None
            self._error_told = False

    def decoded(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, int] | None:
        return self.cache.get(os.fspath(path))

    def load(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
        """Audio of `path`, shared with playback: never decodes a file twice at once."""
        path = os.fspath(path)
        cached = self.cache.get(path)
        if cached is not None:
            return cached
        try:
            return self._decode(path, urgent=True).result()
        except CancelledError:  # a play() of another row dropped it from the queue: ask again
            return self._decode(path, urgent=True).result()

    def predecode(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        wanted = [os.fspath(p) for p in paths][:PREDECODE_AHEAD]
        with self._futures_lock:
            # The user moved on: guesses about rows no longer ahead are dropped if not started.
            for path, future in list(self._ahead_pending.items()):
                if path not in wanted and future.cancel():
                    self._ahead_pending.pop(path, None)
                    self._inflight.pop(path, None)
        for path in wanted:
            if self._closed or path in self.cache:
                continue
            try:
                if os.path.getsize(path) > PREDECODE_MAX_FILE_BYTES:
                    continue
            except OSError:
                continue
            self._decode(path, urgent=False)

    def close(self) -> None:
        self._closed = True
        self.stop()
        with self._stream_lock:
            self._close_stream()
        self._runner.close_lane(AHEAD_LANE)
        self._runner.close_lane(PLAY_LANE)

    # ----------------------------------------------------------------- decoding
    def _decode(self, path: str, urgent: bool) -> Future[tuple[np.ndarray, int]]:
        with self._futures_lock:
            future = self._inflight.get(path)
            if future is not None and not future.cancelled():
                # A queued guess that is now wanted right away moves to the urgent thread.
                if urgent and path in self._ahead_pending and future.cancel():
                    self._ahead_pending.pop(path, None)
                else:
                    return future
            pool = self._urgent if urgent else self._ahead
            future = pool.submit(self._read, path)
            self._inflight[path] = future
            (self._urgent_pending if urgent else self._ahead_pending)[path] = future
            return future

    def _cancel_queued_plays(self, keep: str) -> None:
        """Arrowing fast over cold rows: only the row the user stopped on is worth decoding."""
        with self._futures_lock:
            for path, future in list(self._urgent_pending.items()):
                if path != keep and future.cancel():
                    self._urgent_pending.pop(path, None)
                    self._inflight.pop(path, None)

    def _read(self, path: str) -> tuple[np.ndarray, int]:
        try:
            data, rate = read_for_playback(path)
            self.cache.put(path, data, rate)
            return data, rate
        finally:
            with self._futures_lock:
                self._inflight.pop(path, None)
                self._ahead_pending.pop(path, None)
                self._urgent_pending.pop(path, None)

    def _decoded_for_play(self, request: int, path: str, future: Future[Any], start: float,
                          requested_at: float) -> None:
        if request != self._request or future.cancelled():
            return  # another row was selected meanwhile
        exc = future.exception()
        if exc is not None:
            self._pending_path = None
            message = str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
            self.error.emit(f"Cannot play {os.path.basename(path)}: {message}")
            self.stopped.emit()  # the previous row was silenced when this one was asked for
            return
        self._begin(request, path, future.result(), start, requested_at)

    # ----------------------------------------------------------------- the stream
    def _begin(self, request: int, path: str, audio: tuple[np.ndarray, int], start: float,
               requested_at: float, ready: int | None = None,
               start_at: float | None = None) -> None:
        data, rate = audio
        with self._stream_lock:
            if request != self._request:
                return
            stream = self._stream_for(rate)
            if stream is None:
                self._pending_path = None
                return
            if stream.samplerate != rate:  # the device refused the file's rate
                data = portaudio.resample_block(data, rate, int(stream.samplerate))
                rate = int(stream.samplerate)
            voice = Voice(path, data, rate, requested_at,
                          pos=int(np.clip(start * rate, 0, len(data))), ready=ready,
                          start_at=start_at)
            with self._voice_lock:
                if request != self._request:
                    return  # stop() or another play() won the race
                self._voice = voice
                self._pending_path = None
                restart = self._stream_ending or not stream.active
                self._stream_ending = False
            try:
                if restart:
                    if not stream.stopped:
                        stream.abort()  # the callback had finished: reset before a new start
                    stream.start()
            except Exception as exc:  # noqa: BLE001 - PortAudio errors are reported, not raised
                self._close_stream()
                self._report_unavailable(f"the audio output failed to start ({exc})")
                return
        self.started.emit(path)

    def _stream_for(self, rate: int) -> Any:
        sd = portaudio.load()
        if sd is None:
            self._report_unavailable(portaudio.failure() or "PortAudio is missing")
            return None
        info = self._output_device_info()
        if info is None:
            return None
        out_channels = max(1, min(2, int(info["max_output_channels"])))
        key = (self._device, rate, out_channels)
        if self._stream is not None and self._stream_key == key:
            return self._stream
        self._close_stream()
        last_error: Exception | None = None
        # The file's own rate first (no resampling); the device's default rate if refused.
        for candidate in dict.fromkeys([rate, int(info["default_samplerate"])]):
            try:
                stream = sd.OutputStream(
                    device=self._device, samplerate=candidate, channels=out_channels,
                    dtype="float32", latency=OUTPUT_LATENCY, callback=self._callback)
            except Exception as exc:  # noqa: BLE001 - sd.PortAudioError and bad settings
                last_error = exc
                continue
            self._stream, self._stream_key = stream, key
            return stream
        self._report_unavailable(f"the audio output could not be opened ({last_error})")
        return None

    def _output_device_info(self) -> dict[str, Any] | None:
        sd = portaudio.load()
        if sd is None:
            self._report_unavailable(portaudio.failure() or "PortAudio is missing")
            return None
        try:
            info = sd.query_devices(self._device, kind="output")
        except Exception:  # noqa: BLE001 - no default output, unknown name, bad index
            # PortAudio's own words ("Error querying device -1") mean nothing to a producer.
            self._report_unavailable(
                "no audio output device was found" if self._device is None
                else f"the audio output {self._device!r} was not found")
            return None
        if int(info["max_output_channels"]) < 1:
            self._report_unavailable(f"{info['name']} has no output channels")
            return None
        return info

    def _close_stream(self) -> None:
        stream, self._stream, self._stream_key = self._stream, None, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead device must not raise
                pass

    def _report_unavailable(self, reason: str) -> None:
        self._unavailable = reason
        self._pending_path = None
        if not self._error_told:
            self._error_told = True
            self.error.emit(f"Audio playback is off: {reason}. Everything else still works.")

    def _callback(self, out: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        with self._voice_lock:
            voice = self._voice
            if voice is None or voice.finished:
                out.fill(0)
                self._stream_ending = True
                raise portaudio.load().CallbackStop  # type: ignore[union-attr]
        if voice.first_callback_at is None:
            now = time.perf_counter()
            self._last_latency = now - voice.requested_at
            # This block reaches the DAC after the stream's latency (some ALSA plugins report
            # no delay: the stream's latency is then the estimate).
            dac_delay = time_info.outputBufferDacTime - time_info.currentTime
            if not time_info.currentTime or dac_delay <= 0:
                dac_delay = float(self._stream.latency or 0.0)
            voice.first_block(now, dac_delay)
        voice.fill(out, self._loop)
        volume = self._volume
        if volume != 1.0:
            out *= volume

    def _tick(self) -> None:
        voice = self._voice
        if voice is None:
            if self._pending_path is None:
                self._timer.stop()
            return
        latency = float(self._stream.latency) if self._stream is not None else 0.0
        self.position.emit(max(0.0, min(voice.pos / voice.rate - latency,
                                        len(voice.data) / voice.rate)))
        if voice.finished:
            with self._voice_lock:
                if self._voice is voice:
                    self._voice = None
            self._timer.stop()
            self.stopped.emit()

