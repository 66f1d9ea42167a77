"""Painting in the results table: the match bar."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from clapdesk.gui.results_model import SCORE_ROLE

BAR_COLOUR = QColor("#b07420")
TRACK_COLOUR = QColor("#2a2e37")


class MatchBarDelegate(QStyledItemDelegate):
    """A bar as long as the match relative to the best hit, with the score on top."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        fraction = index.data(SCORE_ROLE)
        if fraction is None:
            super().paint(painter, option, index)
            return
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        rect = QRectF(option.rect).adjusted(4, option.rect.height() * 0.3, -4,
                                            -option.rect.height() * 0.3)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(TRACK_COLOUR)
        painter.drawRoundedRect(rect, 2, 2)
        filled = QRectF(rect)
        filled.setWidth(rect.width() * max(0.0, min(1.0, float(fraction))))
        painter.setBrush(BAR_COLOUR)
        painter.drawRoundedRect(filled, 2, 2)
        painter.setPen(option.palette.text().color())
        painter.drawText(option.rect.adjusted(4, 0, -6, 0),
                         int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                         str(index.data(Qt.ItemDataRole.DisplayRole) or ""))
        painter.restore()
