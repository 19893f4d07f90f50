"""Data: the sources, the download, labels from voice activity, segments, splits and the stores the stages write and
read."""
