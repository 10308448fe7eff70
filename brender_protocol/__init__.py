"""The farm's wire, defined once: output formats and frame file names (`formats`),
a shot's limits and render overrides (`shot`), the text and path rules every name
and path obeys (`text`), and the node channel's messages (`messages`).

Standard library only: the coordinator, the node, the add-on (its zip carries a
copy) and Blender's own Python (the node's driver loads `formats` by file path)
all import it.
"""
