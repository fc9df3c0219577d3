"""Rules without I/O: channel names and permissions, recovery, wire encoding, sessions."""
