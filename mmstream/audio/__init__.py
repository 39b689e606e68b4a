"""Audio plumbing shared by the microphone source and the speech stages."""
