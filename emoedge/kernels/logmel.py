"""Log-mel kernel (filled by the log-mel work)."""
__all__: list = []
