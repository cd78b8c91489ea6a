r"""What leaked internals look like: the patterns `scrub` searches an upstream's error text for.

`PATTERNS` holds one tuple of regular expressions per reason, in the order
scrub tries them: traces before SQL and paths, because a trace holds those
too and says more. The reasons and examples are listed in scrub's docstring.

English must pass. SQL is known by its structure, never by a lone keyword:
`SELECT` with `*`, a qualified or quoted column, or a clause after the table
(`WHERE col =`, `JOIN`, `ORDER BY`); `INSERT INTO t (a, ...`; `UPDATE t SET
c =`; `DELETE FROM t WHERE c =`. Statement keywords are all upper or all
lower case, as SQL is written and prose is not. A path counts under a server
root or with a source or binary file extension, never inside a URL
(`https://host/var/x`): a path starts a token.

Text is often a JSON document that failed to parse or was quoted into HTML, so
patterns also accept JSON escapes where a line would start (`\n\tat com.x...`),
`\"` around Python file names and `\/` in paths.

Bodies up to `max_error_body` (64 KiB by default) are scanned on the request
path, so a search must be linear in the text, with a small constant:

- Every pattern starts with a literal, which `re` finds with a fast substring
  search, and checks a word boundary by looking behind it afterwards.
- A repeated group ends in a literal its body cannot match, or is possessive,
  so a text splits into its repetitions one way only: no catastrophic
  backtracking.
- An attempt starts at every occurrence of the leading literal, and the text
  one attempt reads is read again by every attempt that starts inside it. So
  a gap of free text is bounded and cannot cross the literal that starts the
  next attempt (`in ` before `[^\s<>]{1,400}\.php`: the gap holds no space),
  and a path is tried only where it starts: its look-behind refuses every
  character a segment may hold, `$` included, so `/$/$/$...` is tried once
  from its first slash, not from each of its 32,768 slashes.
- The one shape with a long gap that may hold anything, .NET's
  `System.XException: message` and a frame up to 1,000 characters on, is
  not one pattern: `EXCEPTION_LINES` and `FRAME_AT` are searched for
  separately and joined by scrub, which reads the text about twice in all
  (as one pattern, "System.XException:" repeated had each of its thousands
  of attempts read 1,000 characters: 300 ms for 64 KiB).
"""

from __future__ import annotations

import re

def _word(literal: str) -> str:
    """`literal` where a word starts: after a non-word character, or a JSON escape like \\n."""
    width = len(literal)
    return rf"{re.escape(literal)}(?:(?<!\w.{{{width}}})|(?<=\\[nrt].{{{width}}}))"


def _sql(keyword: str, rest: str) -> tuple[str, str]:
    """A statement starting with `keyword` in upper or lower case; the rest in any case."""
    return tuple(f"{_word(spelling)}(?i:{rest})" for spelling in (keyword, keyword.lower()))


_PYTHON = (
    r"Traceback \(most recent call last\)",
    # A frame is followed by ", in function"; "File \"orders.csv\", line 3" alone is a CSV error.
    _word("File ") + r'\\?"[^"\n]{1,500}\\?", line \d+, in ',
    _word("File ") + r'\\?"[^"\n]{0,500}\.py\\?", line \d+',
)
_JAVA = (
    # The optional prefixes are a module (java.base/) or a class loader (app//).
    _word("at ") + r"(?:[\w$.@-]{0,100}+/){0,2}(?:[\w$]++\.)++[\w$<>]++"
    r"\((?:[\w$ -]{1,200}\.(?:java|kt|kts|scala|groovy|clj)(?::\d+)?|Native Method|Unknown Source)\)",
    r'Exception in thread "[^"\n]{1,200}"',
    *(_word(label) + r"(?:[a-z][\w$]{0,100}+\.){1,20}+[A-Z]" for label in ("Caused by: ", "Suppressed: ")),
    # Only on a line of its own, indented: "... 3 more" also ends sentences.
    r"\.\.\. (?:(?<=\t\.\.\. )|(?<=\\t\.\.\. )|(?<=    \.\.\. ))\d+ (?:more|common frames omitted)\b",
)
_DOTNET = (
    r":line (?:(?<=\.[cvf]s:line )|(?<=\.cshtml:line )|(?<=\.razor:line ))\d",
    r"--- End of (?:inner exception )?stack trace",
    # A frame without file info: no space before the parenthesis (a Node
    # frame has one) and a namespace that starts with a letter (not a date).
    _word("at ") + r"[A-Za-z_][\w`$<>]*+\.(?:[\w`$<>]++\.)++[\w`$<>]++(?:\[[\w, `]{0,200}+\])?\([^()\n]{0,500}+\)",
)
# "System.XException: message" with a frame after it, within WINDOW characters
# on the same line or after a line break and at most BLANK_RUN blanks (see
# scrub, which joins them).
EXCEPTION_LINES = tuple(
    rf"{namespace}\.(?:\w++\.){{0,10}}+\w*+(?<=Exception):" for namespace in ("System", "Microsoft")
)
FRAME_AT = r"(?:(?<=\s)|(?<=\\[rn]))at\s"
BLANK_RUN = r"(?:\s|\\[rn]){1,20}"
WINDOW = 1000
_PHP = (
    r"Stack trace:(?:\s|\\[rn]|<br\s?/?>){0,8}#0 ",
    r"#\d{1,4} (?:\S{1,400}\.php\(\d+\): |\{main\}|\[internal function\]: )",
    _word("PHP ") + r"(?:Fatal error|Parse error|Warning|Notice|Deprecated|Stack trace):",
    r"Fatal error(?:</b>)?: {1,2}Uncaught\b",
    # Also as display_errors writes it: in <b>/x.php</b> on line <b>12</b>.
    _word("in ") + r"(?:<b>)?[^\s<>]{1,400}\.php(?:</b>)?(?: on line (?:<b>)?\d|:\d)",
)
# Where a Node frame points: a path, a node: or webpack: URL, or a script file.
_NODE_LOCATION = (
    r"(?:(?:node:|file:|webpack:|/|\.{1,2}/|[A-Za-z]:\\)[^()\s]{0,400}"
    r"|[\w.@/-]{1,400}\.(?:[cm]?[jt]s|[jt]sx)):\d+:\d+"
)
_NODE = (
    # Three kinds of frame behind one "at ": one attempt at each "at " in the text, not three.
    _word("at ") + "(?:" + "|".join((
        rf"(?:async )?(?:new )?[^\s()]{{1,300}}+ \((?:{_NODE_LOCATION}|native|<anonymous>|index \d+)\)",
        rf"(?:async )?{_NODE_LOCATION}",
        r"Object\.<anonymous>|process\.processTicksAndRejections|Module\._compile",
    )) + ")",
    r"node:internal/",
)
_GO = (
    _word("goroutine ") + r"\d+ \[[^\]\n]{1,100}\]:",
    # "Don't panic: ..." is prose; Go writes panic: at the start of a line.
    r"panic: (?:(?<![^\n]panic: )|(?<=\\npanic: ))",
    r"panic: runtime error\b",
    r"\.go:\d+ \+0x[0-9a-f]+",
    r"\[signal SIG[A-Z]+: ",
    r"fatal error: (?:all goroutines are asleep|concurrent map|runtime: |out of memory|stack overflow)",
)
_RUBY = (
    r"\.(?:rb|erb|rake|ru|haml|slim):\d+:in [`']",
    # Binstubs (bin/rails:4) have no extension.
    _word("from ") + r"[^\s:]{1,400}+:\d+:in [`']",
)
_RUST = (
    _word("thread '") + r"[^'\n]{1,200}' panicked at ",
    r"RUST_BACKTRACE=",
)

# Identifiers as SQL writes them: plain, "quoted", `quoted` or [quoted].
_IDENT = r'(?>[A-Za-z_][\w$]{0,127}|"[^"\n]{1,128}"|`[^`\n]{1,128}`|\[[^\]\n]{1,128}\])'
_NAME = rf"{_IDENT}(?:\.{_IDENT}){{0,3}}"
_ALIAS = rf"(?:\s+(?:AS\s+)?{_IDENT})?"
_CALL = r"\w{1,64}+\([^()\n]{0,200}+\)"
_ITEM = rf"(?:\*|{_NAME}(?:\.\*)?|{_CALL})(?:\s+AS\s+{_IDENT})?"
_STRONG_ITEM = rf'(?:\*|{_IDENT}\.(?:\*|{_NAME})|(?=["`\[]){_NAME}|{_CALL})(?:\s+AS\s+{_IDENT})?'
_MORE_ITEMS = rf"(?:\s*,\s*{_ITEM}){{0,500}}"
_WHERE = (
    rf"WHERE\s+(?:\(\s*)?{_NAME}\s*"
    r"(?:=|<>|!=|<=|>=|<|>|IN\s*\(|LIKE\b|IS\s+(?:NOT\s+)?NULL\b|BETWEEN\b)"
)
_CLAUSE = (
    rf"(?:{_WHERE}|(?:(?:INNER|CROSS|(?:LEFT|RIGHT|FULL)(?:\s+OUTER)?)\s+)?JOIN\s+{_NAME}"
    rf"|(?:ORDER|GROUP)\s+BY\s+{_NAME}|LIMIT\s+\d)"
)
_SQL = (
    r"SQLSTATE",
    # PostgreSQL
    r"violates (?:unique|foreign key|not-null|check|exclusion) constraint",
    r"duplicate key value",
    r"syntax error at (?:or near|end of input)",
    r'relation "[^"\n]{1,128}" does not exist',
    r'column "[^"\n]{1,128}"(?: of relation "[^"\n]{1,128}")? does not exist',
    r'null value in column "',
    # MySQL
    r"You have an error in your SQL syntax",
    r"Duplicate entry '[^'\n]{0,300}' for key",
    r"Unknown column '[^'\n]{1,200}' in '",
    _word("Table '") + r"[\w$.`]{1,200}' doesn't exist",
    _word("ER_") + r"[A-Z][A-Z_]+\b",
    # Oracle, SQLite, SQL Server
    r"ORA-\d{5}\b",
    r"SQLITE_[A-Z]",
    r"UNIQUE constraint failed: ",
    r"no such (?:table|column): ",
    r"Violation of (?:PRIMARY|UNIQUE) KEY constraint",
    r"Cannot insert (?:duplicate key|the value NULL)",
    r"Invalid object name '",
    _word("Msg ") + r"\d+, Level \d+, State \d+",
    # Drivers and ORMs, by the names of their modules and errors.
    r"SQL\w{0,60}Exception\b",
    r"Sql\w{0,60}Exception\b",
    r"IntegrityError\b",
    r"OperationalError\b",
    r"ProgrammingError\b",
    *(
        re.escape(name)
        for name in (
            "psycopg", "asyncpg.", "sqlite3.", "sqlalchemy.", "django.db.", "pymysql.", "MySQLdb.",
            "org.hibernate.", "org.postgresql.", "com.mysql.", "org.springframework.jdbc.",
            ".Data.SqlClient", "Npgsql", "PG::", "Mysql2::", "SQLite3::", "ActiveRecord::StatementInvalid",
            "ActiveRecord::RecordNotUnique", "QueryException", "Doctrine\\DBAL", "Doctrine\\\\DBAL",
        )
    ),
    r"Sequelize\w{0,40}Error\b",
    # Statements. A column list no sentence has starts with *, t.*, t.col, "col" or f(...).
    *_sql("SELECT", rf"\s+(?:DISTINCT\s+|TOP\s*\(?\d+\)?\s+)?{_STRONG_ITEM}{_MORE_ITEMS}\s+FROM\s+{_NAME}"),
    # "Select" as a sentence starts it, with a column list no sentence has.
    _word("Select") + rf"(?i:\s+(?:DISTINCT\s+)?{_STRONG_ITEM}{_MORE_ITEMS}\s+FROM\s+{_NAME})",
    # Any column list, when a clause follows the table.
    *_sql("SELECT", rf"\s+(?:DISTINCT\s+)?{_ITEM}{_MORE_ITEMS}\s+FROM\s+{_NAME}{_ALIAS}\s+{_CLAUSE}"),
    # Any column list, SELECT and FROM in capitals as queries write them (prose does not shout both).
    _word("SELECT") + rf"\s+(?:DISTINCT\s+)?{_ITEM}{_MORE_ITEMS}\s+FROM\s+{_NAME}",
    # Statements that change a schema.
    *_sql("DROP", rf"\s+(?:TABLE|VIEW|INDEX|SCHEMA|DATABASE)\s+(?:IF\s+EXISTS\s+)?{_NAME}"),
    *_sql("TRUNCATE", rf"\s+(?:TABLE\s+)?{_NAME}\s*(?:;|$|\s+(?:CASCADE|RESTART)\b)"),
    *_sql("ALTER", rf"\s+TABLE\s+(?:ONLY\s+)?{_NAME}\s+(?:ADD|DROP|ALTER|RENAME|MODIFY)\b"),
    *_sql("CREATE", rf"\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}\s*(?:\(|ON\b|AS\b)"),
    *_sql(
        "INSERT",
        rf"\s+(?:IGNORE\s+)?INTO\s+{_NAME}\s*(?:\(\s*{_IDENT}\s*(?:,|\)\s*(?:VALUES|SELECT|OUTPUT)\b)"
        rf"|VALUES\s*\(|SELECT\s|DEFAULT\s+VALUES\b|SET\s+{_IDENT}\s*=)",
    ),
    *_sql("UPDATE", rf"\s+(?:ONLY\s+)?{_NAME}{_ALIAS}\s+SET\s+{_NAME}\s*="),
    *_sql("DELETE", rf"\s+FROM\s+{_NAME}{_ALIAS}\s+{_WHERE}"),
)

# Where servers keep code, data and configuration; /Users/ is macOS's /home/.
_ROOTS = r"(?:home|var|usr|opt|srv|etc|app|tmp|root|go/src|mnt|proc|private|Users)"
_SOURCE = (
    r"(?:py|pyc|pyx|java|kt|scala|groovy|js|mjs|cjs|ts|tsx|jsx|php|phtml|rb|erb|go|cs|vb|fs"
    r"|dll|exe|so|dylib|jar|war|class|pl|pm|rs|ex|exs|erl|swift)"
)
# After a word, a dot or a slash, a slash is inside a URL (https://host/var/x),
# a file name or a longer path: a path starts a token, or a line in JSON-escaped
# text (\n/var/x). Every character a segment holds is refused here, so a chain
# of segments is tried once.
_STARTS = r"(?:(?<![\w.~/:@%+$\\-]/)|(?<=\\[nrt]/))"
_PATH = (
    rf"/{_STARTS}{_ROOTS}/[\w.@+~$-]",
    rf"\\/(?:(?<![\w.~/:@%+$\\-]\\/)|(?<=\\[nrt]\\/)){_ROOTS}\\/[\w.@+~$-]",
    rf"/{_STARTS}[\w.@+~$-]{{1,255}}(?:/[\w.@+~$-]{{1,255}}){{0,64}}\.{_SOURCE}\b",
    # C:\ and C:/, the drive letter alone: "a:" and "http:" are not drives. In
    # JSON-escaped text "A:\nB" is a line break, so \n, \r or \t after the drive
    # needs a second backslash further on (C:\temp\x).
    r":(?<=[A-Za-z]:)(?<![\w\\/.:-].:)"
    r"(?:\\{2}[\w$.~-]|\\(?![nrt])[\w$.~-]|\\[nrt][\w$.~-]{0,128}+\\|/[\w$.~ -]{1,128}/)",
    r"\\\\(?<![\w\\]\\\\)(?:\\\\)?[\w$.-]{1,255}\\{1,2}[\w$]",
    r"file://(?:/|[A-Za-z]:)",
)

# A URL with a password in it (scheme://user:password@host): a connection string's credentials.
# Each part is taken whole (possessive), and none holds the characters that end it.
_CREDENTIALS = (
    r"[A-Za-z][A-Za-z0-9+.-]{0,30}+://[^\s/?#@:]{0,128}+:[^\s/?#@]{1,256}+@",
)

PATTERNS = (
    ("python traceback", _PYTHON),
    ("java stack trace", _JAVA),
    (".net stack trace", _DOTNET),
    ("php stack trace", _PHP),
    ("node.js stack trace", _NODE),
    ("go panic", _GO),
    ("ruby backtrace", _RUBY),
    ("rust panic", _RUST),
    ("sql", _SQL),
    ("filesystem path", _PATH),
    ("url credentials", _CREDENTIALS),
)
