"""Model state on disk, at the service's edge (`models/` opens no file).

`checkpoints` writes off the loop and restores at start; `checkpoint_dir` checks and sorts
the directory; `checkpoint_files` is the on-disk format (safetensors plus a JSON manifest);
`vectors_file` the `.npz` of `recstream import-vectors` and export.
Empty on purpose: import from the modules.
"""
