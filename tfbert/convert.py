"""`python -m tfbert.convert`: a Hugging Face BERT checkpoint -> a TF Hub (preprocess, encoder) pair.

The converter lives in tfbert/encoders/convert.py; this is its command line.
"""
import sys

from tfbert.encoders.convert import main

if __name__ == "__main__":
    sys.exit(main())
