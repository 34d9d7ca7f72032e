"""Frame preprocessing kernel (filled by the frame-kernel work)."""
__all__: list = []
