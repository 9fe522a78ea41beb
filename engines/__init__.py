"""Tessera engines: all computation and I/O. Never imports Qt, napari or vispy."""
