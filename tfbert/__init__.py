"""tfbert: fine-tune BERT-family TF Hub encoders on text tasks and export SavedModels that serve raw text."""
__version__ = "0.1.0"
