"""Files on disk to decoded audio: finding sound files, reading headers, decoding at the true rate and resampling."""
