"""Image I/O: finding files, decoding with metadata, output formats, atomic writes."""
