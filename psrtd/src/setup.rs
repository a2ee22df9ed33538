//! Config files to server spec (in progress).
