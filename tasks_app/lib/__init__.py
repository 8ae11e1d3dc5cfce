"""Outside concerns, each behind one small module: downloads, outbound transport, archive
storage and file responses, the store shared by processes, secret encryption, zip checks."""
