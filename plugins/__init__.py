"""fasbench built-in plugins (installed as ``fasbench_plugins``); each module is one entry point."""
