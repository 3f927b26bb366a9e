"""ganbench's built-in plugins, each registered through the ``ganbench`` entry-point group."""
