"""Where the shell keeps its command history (a module of its own: the command line reads it
for ``--help`` without loading the prompt_toolkit application)."""

#: The history file unless ``--history`` or ``$SYXDBG_HISTORY`` says otherwise.
DEFAULT_HISTORY = "~/.syxdbg_history"
