"""The input side of a run, in one object: which wordpieces of a text the model reads and how they are cut.

The loop builds a RunInputs once per run from the config (the preprocess model, the window, --long-texts and its
windows, training-only augmentation). Every task gets its token pipelines from it, and the export gets its
InputSettings, so that what was trained and scored is what is served and recorded in the metadata: a new
--long-texts mode changes tfbert.data.long_texts / windows and this object, not each task and exporter. (keras-hub's
preprocessors play the same part: one object, used in tf.data and inside the exported model.)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from tfbert.data.pipeline import MAX_WINDOWS, WINDOW_POOLING, TextPipeline
from tfbert.data.windows import RUN_WINDOW_POOLING

__all__ = ["InputSettings", "RunInputs"]


@dataclass(frozen=True)
class InputSettings:
    """--max-seq-length, --long-texts, --window-stride, --max-windows and --window-pooling: what an export needs
    of the input side."""
    max_seq_length: int = 128
    long_texts: str = "truncate"
    window_stride: int | None = None  # None: the default stride of tfbert.data.long_texts
    max_windows: int = MAX_WINDOWS
    window_pooling: str = WINDOW_POOLING
    pooling_weights: tuple[float, ...] | None = None  # attention's, once fitted (tfbert.data.windows.fit_attention)

    @classmethod
    def from_config(cls, config) -> InputSettings:
        return cls(config.max_seq_length, config.long_texts, config.window_stride, config.max_windows,
                   config.window_pooling or RUN_WINDOW_POOLING)

    def pipeline(self, preprocess, has_pairs: bool = False) -> TextPipeline:
        """A TextPipeline that cuts texts as these settings say. Pairs under windows cut as truncate: windows read
        single texts (training refuses windowed pairs; a windows export still traces its pair signature)."""
        long_texts = "truncate" if has_pairs and self.long_texts == "windows" else self.long_texts
        return TextPipeline(preprocess, self.max_seq_length, has_pairs, long_texts=long_texts,
                            window_stride=self.window_stride, max_windows=self.max_windows,
                            window_pooling=self.window_pooling, pooling_weights=self.pooling_weights)

    def metadata(self) -> dict:
        """What an export records: {"long_texts"} and, under windows, {"windows": size, stride, max_windows, reach,
        pooling}."""
        windows = self.pipeline(None).window_settings()
        return {"long_texts": self.long_texts, **({"windows": windows} if windows else {})}


class RunInputs:
    """A run's InputSettings with its loaded preprocess model and its training augmentation (None without
    --augment): the one maker of the run's TextPipelines, handed by the loop to the task's hooks."""

    def __init__(self, preprocess, settings: InputSettings, augment=None):
        self.preprocess, self.settings, self.augment = preprocess, settings, augment
        self._pipelines: dict[bool, TextPipeline] = {}

    @classmethod
    def from_config(cls, preprocess, config) -> RunInputs:
        from tfbert.data.augment import augmentation
        return cls(preprocess, InputSettings.from_config(config), augmentation(config, preprocess))

    def fit_window_pooling(self, weights) -> None:
        """Attention pooling fitted after training: every pipeline and the export from here on pool with it."""
        self.settings = replace(self.settings, pooling_weights=tuple(float(w) for w in weights))
        self._pipelines.clear()

    def pipeline(self, has_pairs: bool = False) -> TextPipeline:
        if has_pairs not in self._pipelines:
            self._pipelines[has_pairs] = self.settings.pipeline(self.preprocess, has_pairs)
        return self._pipelines[has_pairs]
