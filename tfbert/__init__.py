"""tfbert: fine-tune BERT-family TF Hub encoders on text tasks and export SavedModels that serve raw text.

The public API, which the CLI (`python -m tfbert.train`) and the notebooks both use:

    data = tfbert.load_dataset()                                   # built-in tweets, or your files
    enc = tfbert.resolve_encoder("minilm-l6")                      # (preprocess, encoder) TF Hub handles
    pipe = tfbert.TextPipeline(tfbert.load_preprocess(enc), max_seq_length=128)
    model = tfbert.build_classifier(enc.encoder, len(data.labels))
    model.compile(tfbert.make_optimizer(5e-5, total_steps), loss, metrics)  # then model.fit(pipe.dataset(...))
    path = tfbert.export_classifier(model, enc.preprocess, data.labels, "saved_models/mine", max_seq_length=128,
                                    encoder_handle=enc.encoder)   # serves the fast inference graph
    clf = tfbert.load(path); clf.predict(["some text"])
    summary = tfbert.fine_tune(task="sentiment")                   # or all of it in one call, as the CLI does

Names resolve lazily so that `import tfbert` does not import TensorFlow.
"""
import importlib

__version__ = "0.1.0"

_API = {
    "load_dataset": "tfbert.data_tables", "load_tweets": "tfbert.data_tables", "DataError": "tfbert.data_tables",
    "TextDataset": "tfbert.data_tables", "class_weights": "tfbert.data_tables",
    "resolve_encoder": "tfbert.registry", "registered_names": "tfbert.registry", "EncoderError": "tfbert.registry",
    "convert": "tfbert.convert",
    "TextPipeline": "tfbert.pipeline", "load_preprocess": "tfbert.pipeline",
    "build_classifier": "tfbert.model", "make_optimizer": "tfbert.model",
    "MacroF1": "tfbert.callbacks",
    "fine_tune": "tfbert.train",
    "export_classifier": "tfbert.export",
    "load": "tfbert.serving", "ExportedClassifier": "tfbert.serving",
    "classification_metrics": "tfbert.reports", "plot_confusion_matrix": "tfbert.reports",
    "plot_history": "tfbert.reports",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tfbert' has no attribute {name!r}")
