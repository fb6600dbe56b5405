"""Stage 1: candidate sources behind one small interface (`base`), and their union (`merge`)."""
