"""Background work of a server: dispatching attempts to worker sessions, timers, and
listening for other servers' notifications. Every loop is safe with N servers."""
