"""Sub-commands of the ``fasbench`` CLI, one module each."""
