"""Files that appear whole, names that are safe as folder names, URLs opened safely."""
