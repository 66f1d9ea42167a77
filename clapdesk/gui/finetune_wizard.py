"""Library > Fine-tune…: choose tag sources, preview the texts and the words taught, train,
read what changed in packs it never saw, accept or discard.

Training runs in the background with progress and cancel; a new version is saved only when it
did better on validation, and is not activated until the user accepts. Discarding (or closing)
deletes it again. A run with no gain says why and leaves everything as it was.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from clapdesk.core.finetune.data import (
    Dataset,
    FineTuneCancelled,
    FineTuneError,
    FineTuneOptions,
    FineTuneProgress,
    FineTuneResult,
    count_splice,
    prepare,
)
from clapdesk.core.finetune.training import run_finetune, versions
from clapdesk.core.library import Library
from clapdesk.core.store.catalog import display_path
from clapdesk.gui.workers import TaskRunner, Worker

log = logging.getLogger(__name__)

METRICS = ("R@1", "R@5", "R@10", "P@10")
PREVIEW_PAIRS = 20


class MetricChart(QWidget):
    """Before and after bars per metric, values 0 to 1."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.setMinimumSize(320, 150)

    def set_figures(self, before: dict[str, float], after: dict[str, float]) -> None:
        self.before, self.after = dict(before), dict(after)
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.windowText().color()
        area = QRectF(self.rect()).adjusted(8, 8, -8, -24)
        colours = (QColor("#7a8494"), QColor("#3daee9"))
        slot = area.width() / max(1, len(METRICS))
        bar = slot / 4
        painter.setPen(QPen(text, 1))
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        # The legend: which colour is before, which after (top right).
        for k, label in enumerate(("before", "after")):
            x = area.right() - 150 + k * 75
            painter.fillRect(QRectF(x, area.top(), 10, 10), colours[k])
            painter.drawText(QRectF(x + 14, area.top() - 3, 60, 16),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, label)
        for n, metric in enumerate(METRICS):
            x = area.left() + n * slot + slot / 2 - bar
            for k, figures in enumerate((self.before, self.after)):
                value = max(0.0, min(1.0, float(figures.get(metric, 0.0))))
                height = value * area.height()
                painter.fillRect(QRectF(x + k * bar, area.bottom() - height, bar - 2, height),
                                 colours[k])
            painter.setPen(text)
            painter.drawText(QRectF(area.left() + n * slot, area.bottom() + 4, slot, 18),
                             Qt.AlignmentFlag.AlignCenter, metric)
        painter.end()


class SourcesPage(QWizardPage):
    def __init__(self, wizard: FineTuneWizard) -> None:
        super().__init__()
        self.setTitle("What should clapdesk learn from?")
        self.setSubTitle("Fine-tuning teaches the search the words your library is organised "
                         "by. It takes about a minute and never changes the base model.")
        layout = QVBoxLayout(self)
        self.folder = QCheckBox("Folder names (pack and category)")
        self.filename = QCheckBox("File names (\"808_Kick_Hard\" → 808, kick, hard)")
        self.user = QCheckBox("Tags you set in clapdesk")
        for box in (self.folder, self.filename, self.user):
            box.setChecked(True)
            layout.addWidget(box)
        row = QHBoxLayout()
        self.use_csv = QCheckBox("A CSV file (path,tags):")
        self.csv_path = QLineEdit()
        self.csv_path.setPlaceholderText("tags.csv")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.use_csv)
        row.addWidget(self.csv_path, 1)
        row.addWidget(browse)
        layout.addLayout(row)
        self.holdout = QComboBox()
        self.holdout.addItem("Measure on whole packs it never saw (recommended)", "pack")
        self.holdout.addItem("Measure on random files", "random")
        layout.addWidget(self.holdout)
        splice = count_splice(wizard.library.catalog)
        self.splice_note = QLabel(
            f"⚠ {splice} files are in Splice folders. Splice's licence forbids training AI on "
            "its sounds, so they are left out.")
        self.splice_note.setWordWrap(True)
        self.include_splice = QCheckBox("Include them anyway (I have the right to)")
        for widget in (self.splice_note, self.include_splice):
            widget.setVisible(splice > 0)
            layout.addWidget(widget)
        layout.addStretch(1)
        for box in (self.folder, self.filename, self.user, self.use_csv):
            box.toggled.connect(self.completeChanged)
        self.csv_path.textChanged.connect(self.completeChanged)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Tags file", "", "CSV files (*.csv)")
        if path:
            self.csv_path.setText(path)
            self.use_csv.setChecked(True)

    def options(self) -> FineTuneOptions:
        sources = [name for name, box in (("folder", self.folder), ("filename", self.filename),
                                          ("user", self.user), ("csv", self.use_csv))
                   if box.isChecked()]
        return FineTuneOptions(sources=tuple(sources),
                               csv_path=self.csv_path.text().strip() or None,
                               holdout_by=str(self.holdout.currentData()),
                               include_splice=self.include_splice.isChecked(), activate=False)

    def isComplete(self) -> bool:  # noqa: N802 - Qt's name
        options = self.options()
        if "csv" in options.sources and not options.csv_path:
            return False
        return bool(options.sources)


class PreviewPage(QWizardPage):
    def __init__(self, wizard: FineTuneWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Texts clapdesk will pair with your sounds")
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["File", "Text"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table, 1)
        self.excluded_label = QLabel(
            "Words not taught (pack and author names, words of one pack, numbers and codes: "
            "packs it never saw cannot have them). Tick a word to teach it anyway:")
        self.excluded_label.setWordWrap(True)
        self.excluded = QListWidget()
        self.excluded.setMaximumHeight(110)
        layout.addWidget(self.excluded_label)
        layout.addWidget(self.excluded)
        self.data: Dataset | None = None

    def restored(self) -> tuple[str, ...]:
        """The words the user ticked to teach anyway."""
        return tuple(self.excluded.item(r).data(Qt.ItemDataRole.UserRole)
                     for r in range(self.excluded.count())
                     if self.excluded.item(r).checkState() == Qt.CheckState.Checked)

    def initializePage(self) -> None:  # noqa: N802 - Qt's name
        self.data = None
        self.table.setRowCount(0)
        self.excluded.clear()
        try:
            self.data = prepare(self.owner.library, self.owner.options(), with_features=False)
        except FineTuneError as exc:
            self.summary.setText(f"<b>Fine-tuning cannot start:</b> {exc}.")
            self.completeChanged.emit()
            return
        data = self.data
        packs = ", ".join(data.test_packs()) or "random files"
        lines = [f"clapdesk {data.describe_split()}"
                 + (f" ({packs})." if not data.rotated else "."),
                 f"Words taught ({len(data.vocabulary.tags)}): "
                 + ", ".join(data.vocabulary.tags[:30]) + ("…" if len(data.vocabulary.tags) > 30
                                                            else ""),
                 f"{len(data.pairs)} texts."]
        lines += data.notes
        for word, why in sorted(data.vocabulary.excluded.items()):
            if word in data.vocabulary.dropped_common or why.startswith("on only"):
                continue  # teaching these cannot work; they are not offered
            item = QListWidgetItem(f"{word} — {why}")
            item.setData(Qt.ItemDataRole.UserRole, word)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.excluded.addItem(item)
        self.excluded_label.setVisible(self.excluded.count() > 0)
        self.excluded.setVisible(self.excluded.count() > 0)
        self.summary.setText("<br>".join(lines))
        pairs = data.preview(PREVIEW_PAIRS)
        self.table.setRowCount(len(pairs))
        for row, (path, text) in enumerate(pairs):
            self.table.setItem(row, 0, QTableWidgetItem(display_path(os.path.basename(path))))
            self.table.setItem(row, 1, QTableWidgetItem(text))
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt's name
        return self.data is not None


class TrainPage(QWizardPage):
    def __init__(self, wizard: FineTuneWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Training")
        self.setSubTitle("Only two small layers learn; the sounds are not decoded again.")
        layout = QVBoxLayout(self)
        self.status = QLabel("Starting…")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.clicked.connect(self.owner.stop_training)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)

    def initializePage(self) -> None:  # noqa: N802 - Qt's name
        self.bar.setRange(0, 0)
        self.status.setText("Reading tags…")
        self.cancel_button.setEnabled(True)
        self.owner.start_training()

    def cleanupPage(self) -> None:  # noqa: N802 - Qt's name: going Back
        self.owner.cancel_training()
        self.owner.discard_result()

    def show_progress(self, progress: FineTuneProgress) -> None:
        labels = {"reading tags": "Reading tags…", "reading texts": "Reading the texts…",
                  "training": "Training…", "saving": "Saving the new version…", "done": "Done."}
        self.status.setText(labels.get(progress.phase, progress.phase))
        if progress.total:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(progress.done)

    def show_end(self, message: str) -> None:
        self.status.setText(message)
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.cancel_button.setEnabled(False)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 - Qt's name
        return self.owner.result is not None


class ResultsPage(QWizardPage):
    def __init__(self, wizard: FineTuneWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("Before and after, in packs it never saw")
        layout = QVBoxLayout(self)
        self.words = QLabel()
        self.words.setWordWrap(True)
        self.words.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.words)
        self.chart = MetricChart()
        layout.addWidget(self.chart, 1)
        self.details_button = QPushButton("Details…")
        self.details_button.setCheckable(True)
        layout.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignLeft)
        # The details pane: the figures behind the words, and what was chosen and why.
        self.details = QWidget()
        pane = QHBoxLayout(self.details)
        pane.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(len(METRICS), 2)
        self.table.setHorizontalHeaderLabels(["Before", "After"])
        self.table.setVerticalHeaderLabels(list(METRICS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.explain = QLabel()
        self.explain.setWordWrap(True)
        pane.addWidget(self.table)
        pane.addWidget(self.explain, 1)
        self.details.setVisible(False)
        self.details_button.toggled.connect(self.details.setVisible)
        layout.addWidget(self.details)
        self.setFinalPage(True)

    def initializePage(self) -> None:  # noqa: N802 - Qt's name
        result = self.owner.result
        if result is None:
            return
        if result.saved:
            head = (f"<b>The search got better in packs it never saw.</b> Accept to search "
                    f"with version {result.version}; Discard to keep the model you have.")
        else:
            head = (f"<b>No new version:</b> {result.reason}. The model you search with "
                    "stays as it is.")
        lines = [f"{line[0].upper()}{line[1:]}." for line in result.summary]
        self.words.setText(head + "<br><br>" + "<br>".join(lines))
        for row, metric in enumerate(METRICS):
            for col, figures in enumerate((result.before, result.after)):
                self.table.setItem(row, col, QTableWidgetItem(f"{figures[metric]:.3f}"))
        self.chart.set_figures(result.before, result.after)
        chosen, counts = result.chosen, result.counts
        tried = "; ".join(f"{t['setting']}: {t['choosing_before']:.2f} → {t['choosing_best']:.2f}"
                          f" at step {t['best_step']}" for t in result.tried)
        self.explain.setText(
            f"Recall@K: share of a tag's test files found in the top K; P@10: share of the "
            f"top 10 carrying the tag. Learnt from {counts['train']} files, chosen on "
            f"{counts['validation']}, judged on {counts['test']} in "
            f"{counts['test_packs_count']} test packs ({counts['test_queries']} queries). "
            f"Kept: '{chosen['setting']}' ({chosen['part']}, learning rate "
            f"{chosen['learning_rate']:g}, pull {chosen['pull']:g}) at step {chosen['step']}, "
            f"{chosen['validation_gain']:+.2f} on validation files that chose nothing. "
            f"Tried: {tried}.")
        self.owner.setButtonText(QWizard.WizardButton.FinishButton,
                                 "Accept" if result.saved else "Close")


class FineTuneWizard(QWizard):
    """Emits `modelChanged(model_key)` when a new version is accepted and searched from now."""

    modelChanged = Signal(str)  # noqa: N815 - Qt signal naming

    def __init__(self, library: Library, parent: QWidget | None = None,
                 runner: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.setWindowTitle("Fine-tune the search")
        self.result: FineTuneResult | None = None
        self.worker: Worker | None = None
        # Training runs on the app's one-thread fine-tuning pool (a wizard made without the
        # app's runner, as in a test, owns one).
        self.runner = runner if runner is not None else TaskRunner(self)
        self.sources = SourcesPage(self)
        self.preview = PreviewPage(self)
        self.training = TrainPage(self)
        self.results = ResultsPage(self)
        for page in (self.sources, self.preview, self.training, self.results):
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Accept")
        # Nothing exists to discard until a version is trained: until then it is plain Cancel.
        self.setButtonText(QWizard.WizardButton.CancelButton, "Cancel")
        self.currentIdChanged.connect(self._name_cancel)
        self.resize(720, 480)

    def options(self) -> FineTuneOptions:
        options = self.sources.options()
        if self.currentPage() is not self.preview:  # the preview reads them unrestored
            options.restore_tags = self.preview.restored()
        return options

    def _name_cancel(self, _page_id: int) -> None:
        discard = self.currentPage() is self.results
        self.setButtonText(QWizard.WizardButton.CancelButton, "Discard" if discard else "Cancel")

    # -- training in the background ----------------------------------------------------------------
    def start_training(self) -> None:
        self.discard_result()
        worker: Worker | None = None

        def trained(result: FineTuneResult) -> None:
            self._trained(worker, result)

        def failed(exc: BaseException) -> None:
            self._failed(worker, exc)

        worker = self.runner.submit(
            run_finetune, self.library, self.options(), pool="finetune", name="fine-tuning",
            on_progress=self.training.show_progress, on_result=trained, on_error=failed,
            wants_cancel=True)
        self.worker = worker

    def stop_training(self) -> None:
        """The Cancel button: stop, and say so on the page when the worker has stopped."""
        if self.worker is not None:
            self.worker.cancel.set()

    def cancel_training(self) -> None:
        """Leaving the page or the wizard: stop, and ignore whatever the worker still sends."""
        if self.worker is not None:
            self.worker.cancel.set()
            self.worker = None

    def _trained(self, worker: Worker, result: FineTuneResult) -> None:
        if worker is not self.worker:  # finished after the user went back or closed: unwanted
            if result.version:
                try:
                    versions.delete(self.library, result.version)
                except versions.VersionError as exc:
                    log.info("discarding %s: %s", result.version, exc)
            return
        self.worker = None
        self.result = result
        if result.saved:
            self.training.show_end(f"Done in {result.seconds:.0f} s: the search got better in "
                                   "packs it never saw. Next shows how.")
        else:
            self.training.show_end(f"Done in {result.seconds:.0f} s. No new version: "
                                   f"{result.reason}.")

    def _failed(self, worker: Worker, exc: BaseException) -> None:
        if worker is not self.worker:
            return
        self.worker = None
        if isinstance(exc, FineTuneCancelled):
            self.training.show_end("Cancelled: nothing was saved.")
        elif isinstance(exc, FineTuneError):
            self.training.show_end(f"Fine-tuning cannot start: {exc}.")
        else:
            log.error("fine-tuning failed", exc_info=(type(exc), exc, exc.__traceback__))
            self.training.show_end(f"Fine-tuning failed: {exc}")

    def wait(self, timeout_ms: int = 30000) -> bool:
        return self.runner.wait("finetune", timeout_ms)

    # -- accept or discard ---------------------------------------------------------------------------
    def discard_result(self) -> None:
        """Delete a trained version the user did not accept (it was never activated)."""
        if self.result is None:
            return
        version, self.result = self.result.version, None
        if version is None:  # nothing was saved
            return
        try:
            versions.delete(self.library, version)
        except versions.VersionError as exc:
            log.info("discarding %s: %s", version, exc)

    def accept(self) -> None:
        if self.result is not None and self.result.version:
            try:
                key = versions.activate(self.library, self.result.version)
            except versions.VersionError as exc:
                self.training.status.setText(str(exc))
                return
            self.result = None  # kept: no longer ours to discard
            self.modelChanged.emit(key)
        super().accept()

    def reject(self) -> None:
        self.cancel_training()
        self.wait()
        self.discard_result()
        super().reject()

    def done(self, code: int) -> None:
        self.cancel_training()
        self.wait()
        super().done(code)
