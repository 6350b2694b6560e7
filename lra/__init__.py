"""The Long Range Arena benchmark: data, models, training and results."""
