"""jitgrad.utils: ``data`` (datasets and the DataLoader; ``import jitgrad`` imports it) and
``hooks`` (RemovableHandle). Nothing is imported here: ``hooks`` sits in the bottom layer (the
Tensor class uses it) and ``data`` above the public ops."""
