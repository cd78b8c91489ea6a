"""What `scrub` keeps from clients: traces, SQL and paths, but never plain English."""

from __future__ import annotations

import gc
import random
import time
from typing import Callable

import pytest

from proxy.core.rewrite import UpstreamReply, normalize, parse
from proxy.core.settings import ErrorPolicy
from proxy.core.scrub import MAX_DEPTH, MAX_VALUES, TOO_DEEP, TOO_LARGE, find_unsafe_in_json, is_safe, unsafe_reason


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


PYTHON = "python traceback"
JAVA = "java stack trace"
DOTNET = ".net stack trace"
PHP = "php stack trace"
NODE = "node.js stack trace"
GO = "go panic"
RUBY = "ruby backtrace"
RUST = "rust panic"
SQL = "sql"
PATH = "filesystem path"

DJANGO = """\
Traceback (most recent call last):
  File "/usr/local/lib/python3.11/site-packages/django/core/handlers/exception.py", line 55, in inner
    response = get_response(request)
               ^^^^^^^^^^^^^^^^^^^^^
  File "/app/orders/views.py", line 88, in update_order
    order.total = int(request.POST["total"])
ValueError: invalid literal for int() with base 10: 'abc'
"""
SPRING = """\
java.lang.IllegalStateException: Order 42 already shipped
\tat com.acme.shop.order.OrderService.cancel(OrderService.java:118)
\tat com.acme.shop.order.OrderController.cancel(OrderController.java:57)
\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)
\t... 48 more
"""
ASPNET = """\
System.NullReferenceException: Object reference not set to an instance of an object.
   at Acme.Orders.OrderService.Save(Order order) in C:\\src\\Acme.Orders\\OrderService.cs:line 42
   at Acme.Orders.Controllers.OrdersController.Put(Int32 id, OrderDto dto) in C:\\src\\Acme.Orders\\Controllers\\OrdersController.cs:line 77
   at lambda_method12(Closure , Object , Object[] )
"""
LARAVEL = """\
Illuminate\\Database\\Eloquent\\ModelNotFoundException: No query results for model [App\\Models\\Order] 42
Stack trace:
#0 /var/www/html/vendor/laravel/framework/src/Illuminate/Database/Eloquent/Builder.php(599): Illuminate\\Database\\Eloquent\\Builder->findOrFail(42)
#1 /var/www/html/app/Http/Controllers/OrderController.php(31): Illuminate\\Database\\Eloquent\\Builder->__call('findOrFail', Array)
#2 {main}
"""
EXPRESS = """\
Error: connect ECONNREFUSED 127.0.0.1:5432
    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1595:16)
    at async OrdersService.update (/usr/src/app/dist/orders/orders.service.js:42:17)
    at async Promise.all (index 0)
"""
GO_NIL = """\
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6b4c2a]

goroutine 1 [running]:
main.(*OrderStore).Save(0x0, {0xc0000a6000, 0x2a})
\t/go/src/app/store.go:42 +0x2a
main.main()
\t/go/src/app/main.go:17 +0x1d
exit status 2
"""
RAILS = """\
NoMethodError (undefined method `total' for nil:NilClass):
  app/models/order.rb:12:in `save'
  app/controllers/orders_controller.rb:27:in `update'
"""
UNSAFE = [
    # Python
    pytest.param(DJANGO, PYTHON, id="python-django"),
    pytest.param(crlf(DJANGO), PYTHON, id="python-django-crlf"),
    pytest.param(
        "Could not save order 42. Internal error follows.\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/shop/shop/api.py", line 12, in save\n'
        "    db.session.commit()\n"
        "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) server closed the connection unexpectedly\n"
        "Please try again later.",
        PYTHON,
        id="python-embedded",
    ),
    pytest.param(
        '  File "/opt/venv/lib/python3.12/site-packages/sqlalchemy/engine/base.py", line 1969, in _exec_single_context\n'
        "    self.dialect.do_execute(\n",
        PYTHON,
        id="python-frame-without-header",
    ),
    pytest.param(
        '{"detail": "Traceback (most recent call last):\\n  File \\"/app/main.py\\", line 3, in <module>\\n    run()"}',
        PYTHON,
        id="python-json-escaped",
    ),
    # Java, Kotlin, Scala
    pytest.param(SPRING, JAVA, id="java-spring"),
    pytest.param(crlf(SPRING), JAVA, id="java-spring-crlf"),
    pytest.param(
        'Exception in thread "main" java.lang.NullPointerException: Cannot invoke "String.length()" because "name" is null\n'
        "\tat Main.main(Main.java:5)\n",
        JAVA,
        id="java-main-thread",
    ),
    pytest.param(
        "org.springframework.dao.DataIntegrityViolationException: could not execute statement\n"
        "\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(HibernateJpaDialect.java:290)\n"
        "Caused by: org.hibernate.exception.ConstraintViolationException: could not execute statement\n"
        "\tat com.acme.billing.InvoiceRepository.save(InvoiceRepository.kt:31)\n"
        "\tat kotlinx.coroutines.DispatchedTask.run(DispatchedTask.kt:108)\n"
        "\t... 12 more\n",
        JAVA,
        id="kotlin-caused-by",
    ),
    pytest.param(
        "Ask failed for order 42:\n"
        "\tat scala.collection.immutable.List.foreach(List.scala:333)\n"
        "\tat akka.actor.typed.internal.adapter.ActorAdapter.aroundReceive(ActorAdapter.scala:140)\n",
        JAVA,
        id="scala-embedded",
    ),
    pytest.param(
        "Upstream call failed\nCaused by: java.net.SocketTimeoutException: Read timed out", JAVA, id="java-caused-by-only"
    ),
    pytest.param(
        '{"status":500,"trace":"java.lang.RuntimeException: boom\\n\\tat com.acme.Api.get(Api.java:12)\\n"}',
        JAVA,
        id="java-json-escaped",
    ),
    # .NET
    pytest.param(ASPNET, DOTNET, id="dotnet-aspnet"),
    pytest.param(crlf(ASPNET), DOTNET, id="dotnet-aspnet-crlf"),
    pytest.param(
        "System.InvalidOperationException: Sequence contains no elements\n"
        "   at System.Linq.ThrowHelper.ThrowNoElementsException()\n"
        "   at Acme.Billing.InvoiceService.GetLatestAsync(Guid customerId)\n"
        "--- End of stack trace from previous location ---\n"
        "   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.Execute(ActionContext context)\n",
        DOTNET,
        id="dotnet-release-build",
    ),
    pytest.param(
        "Unhandled exception. System.ArgumentNullException: Value cannot be null. (Parameter 'key') "
        "at System.Collections.Generic.Dictionary`2.FindValue(TKey key)",
        DOTNET,
        id="dotnet-one-line",
    ),
    pytest.param(
        "The service failed to start:\n"
        "   at Acme.Api.Program.<Main>$(String[] args) in /src/Acme.Api/Program.cs:line 14\n",
        DOTNET,
        id="dotnet-linux-embedded",
    ),
    # PHP
    pytest.param(LARAVEL, PHP, id="php-laravel"),
    pytest.param(crlf(LARAVEL), PHP, id="php-laravel-crlf"),
    pytest.param(
        "PHP Fatal error:  Uncaught PDOException: SQLSTATE[23000]: Integrity constraint violation: 1062 "
        "Duplicate entry 'a@example.com' for key 'users_email_unique' in /var/www/html/src/UserRepository.php:41\n"
        "Stack trace:\n"
        "#0 /var/www/html/src/UserRepository.php(41): PDOStatement->execute()\n"
        "#1 {main}\n"
        "  thrown in /var/www/html/src/UserRepository.php on line 41\n",
        PHP,
        id="php-cli-log",
    ),
    pytest.param(
        "<br />\n<b>Fatal error</b>:  Uncaught Error: Call to undefined function mysql_connect() "
        "in /var/www/html/db.php:3\nStack trace:\n#0 {main}\n  thrown in <b>/var/www/html/db.php</b> "
        "on line <b>3</b><br />\n",
        PHP,
        id="php-display-errors-html",
    ),
    pytest.param(
        "<p>Sorry!</p><b>Warning</b>:  Undefined variable $total in <b>/home/shop/public_html/cart.php</b> "
        "on line <b>88</b><br />",
        PHP,
        id="php-warning-embedded",
    ),
    # Node.js
    pytest.param(EXPRESS, NODE, id="node-express"),
    pytest.param(crlf(EXPRESS), NODE, id="node-express-crlf"),
    pytest.param(
        "TypeError: Cannot read properties of undefined (reading 'id')\n"
        "    at Object.<anonymous> (/app/index.js:10:5)\n"
        "    at Module._compile (node:internal/modules/cjs/loader:1256:14)\n",
        NODE,
        id="node-anonymous",
    ),
    pytest.param(
        'Request failed: ValidationError: "email" is required\n'
        "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n"
        "We are looking into it.",
        NODE,
        id="node-embedded",
    ),
    pytest.param(
        "Error: ENOENT\n    at Server.<anonymous> (C:\\Users\\dev\\shop\\server.js:27:11)\n", NODE, id="node-windows"
    ),
    pytest.param(
        "BadRequestException: Invalid id\n"
        "    at UserController.create (webpack:///./src/users/user.controller.ts?4f2a:58:23)\n"
        "    at /workspace/shop/node_modules/@nestjs/core/router/router-execution-context.js:46:28\n",
        NODE,
        id="node-typescript",
    ),
    # Go
    pytest.param(GO_NIL, GO, id="go-nil-pointer"),
    pytest.param(crlf(GO_NIL), GO, id="go-nil-pointer-crlf"),
    pytest.param(
        "2024/05/01 12:03:04 http: panic serving 10.0.0.7:51234: assignment to entry in nil map\n"
        "goroutine 34 [running]:\n"
        "net/http.(*conn).serve.func1()\n"
        "\t/usr/local/go/src/net/http/server.go:1868 +0xb9\n",
        GO,
        id="go-http-recovered",
    ),
    pytest.param(
        "fatal error: concurrent map writes\n\ngoroutine 7 [running]:\nmain.worker()\n", GO, id="go-fatal-error"
    ),
    pytest.param(
        "Import stopped (panic: runtime error: index out of range [3] with length 3), nothing was saved.",
        GO,
        id="go-embedded",
    ),
    # Ruby
    pytest.param(RAILS, RUBY, id="ruby-rails"),
    pytest.param(crlf(RAILS), RUBY, id="ruby-rails-crlf"),
    pytest.param(
        "/usr/lib/ruby/3.4.0/json/common.rb:221:in 'JSON::Ext::Parser.parse': unexpected token at 'oops' (JSON::ParserError)\n"
        "\tfrom /usr/lib/ruby/3.4.0/json/common.rb:221:in 'JSON.parse'\n"
        "\tfrom bin/import:4:in '<main>'\n",
        RUBY,
        id="ruby-3.4-quotes",
    ),
    pytest.param(
        "We could not render your cart.\n"
        "ActionView::Template::Error (undefined local variable or method `cart'):\n"
        "    app/views/carts/show.html.erb:5:in `_app_views_carts_show_html_erb__4411'\n",
        RUBY,
        id="ruby-erb-embedded",
    ),
    # Rust
    pytest.param(
        "thread 'main' panicked at src/main.rs:2:5:\n"
        "index out of bounds: the len is 3 but the index is 7\n"
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        RUST,
        id="rust-main",
    ),
    pytest.param(
        "thread 'tokio-runtime-worker' panicked at 'called `Option::unwrap()` on a `None` value', "
        "src/handlers/orders.rs:88:41\n",
        RUST,
        id="rust-tokio-old-format",
    ),
    pytest.param(
        crlf("Worker failed.\nthread 'actix-rt|system:0|arbiter:1' panicked at src/db.rs:17:10:\ncalled `Result::unwrap()` on an `Err` value\n"),
        RUST,
        id="rust-embedded-crlf",
    ),
    # SQL: errors
    pytest.param(
        'ERROR:  duplicate key value violates unique constraint "orders_pkey"\nDETAIL:  Key (id)=(42) already exists.\n',
        SQL,
        id="sql-postgres-duplicate",
    ),
    pytest.param(
        'ERROR:  syntax error at or near "FROM"\nLINE 1: SELECT id, FROM orders\n                   ^\n',
        SQL,
        id="sql-postgres-syntax",
    ),
    pytest.param(
        "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version "
        "for the right syntax to use near 'WHERE id = 1' at line 1",
        SQL,
        id="sql-mysql-syntax",
    ),
    pytest.param("ORA-00001: unique constraint (SHOP.ORDERS_PK) violated\n", SQL, id="sql-oracle"),
    pytest.param("SQLITE_CONSTRAINT: UNIQUE constraint failed: users.email", SQL, id="sql-sqlite"),
    pytest.param(
        "psycopg2.errors.SerializationFailure: could not serialize access due to concurrent update",
        SQL,
        id="sql-psycopg2",
    ),
    pytest.param(
        "could not execute statement; SQL [n/a]; constraint [uk_email]; "
        "nested exception is org.hibernate.exception.ConstraintViolationException: could not execute statement",
        SQL,
        id="sql-hibernate",
    ),
    pytest.param(
        "PG::ForeignKeyViolation: insert or update violates a foreign key\n", SQL, id="sql-rails-pg"
    ),
    pytest.param(
        "Microsoft.Data.SqlClient.SqlException (0x80131904): Violation of PRIMARY KEY constraint 'PK_Orders'. "
        "Cannot insert duplicate key in object 'dbo.Orders'.",
        SQL,
        id="sql-sqlserver",
    ),
    pytest.param("SQLSTATE[HY000] [2002] Connection refused", SQL, id="sql-sqlstate"),
    pytest.param(
        crlf(
            '(psycopg2.errors.UndefinedTable) relation "orders" does not exist\n'
            "[SQL: SELECT orders.id, orders.total FROM orders WHERE orders.id = %(pk_1)s]\n"
            "(Background on this error at: https://sqlalche.me/e/20/f405)\n"
        ),
        SQL,
        id="sql-sqlalchemy-crlf",
    ),
    # SQL: statements
    pytest.param("SELECT id FROM users WHERE email = 'a@example.com'", SQL, id="sql-select-where"),
    pytest.param('SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2', SQL, id="sql-select-rails"),
    pytest.param("select o1_0.id,o1_0.total from orders o1_0 where o1_0.id=?", SQL, id="sql-select-hibernate"),
    pytest.param("SELECT COUNT(*) FROM orders", SQL, id="sql-select-count"),
    pytest.param(
        "Query failed:\n  SELECT\n    id,\n    email\n  FROM users u\n  JOIN orders o ON o.user_id = u.id\n",
        SQL,
        id="sql-select-formatted-embedded",
    ),
    pytest.param("INSERT INTO orders (id, customer_id, total) VALUES (42, 7, 19.99)", SQL, id="sql-insert"),
    pytest.param("UPDATE orders SET status = 'shipped' WHERE id = 42", SQL, id="sql-update"),
    pytest.param("UPDATE `orders` SET `status` = 'paid' WHERE `id` = 42", SQL, id="sql-update-backticks"),
    pytest.param("Cleanup failed: delete from sessions where expires_at < now()", SQL, id="sql-delete-lowercase"),
    pytest.param(crlf("Statement:\nDELETE FROM [dbo].[Carts]\nWHERE [Id] = @p0;\n"), SQL, id="sql-delete-crlf"),
    pytest.param("query failed: SELECT password FROM users", SQL, id="sql-select-capitals"),
    pytest.param("redis://:secret@10.0.0.3:6379 unreachable", "url credentials", id="credentials-redis"),
    pytest.param('{"error": "cannot connect to postgres://app:hunter2@db.internal/orders"}', "url credentials",
                 id="credentials-postgres-json"),
    pytest.param("Select * From users", SQL, id="sql-select-sentence-case-star"),
    pytest.param("drop table users", SQL, id="sql-drop-table"),
    pytest.param("DROP TABLE IF EXISTS public.sessions;", SQL, id="sql-drop-table-if-exists"),
    pytest.param("truncate table audit_log;", SQL, id="sql-truncate"),
    pytest.param("ALTER TABLE orders ADD COLUMN note text", SQL, id="sql-alter"),
    pytest.param("CREATE UNIQUE INDEX idx_email ON users (email)", SQL, id="sql-create-index"),
    # Paths
    pytest.param("could not open /var/lib/shop/uploads/42.pdf", PATH, id="path-var"),
    pytest.param("config /etc/shop/config.yaml is invalid", PATH, id="path-etc"),
    pytest.param("template not found: /app/templates/invoice.html", PATH, id="path-app"),
    pytest.param("Permission denied: '/tmp/uploads/abc'", PATH, id="path-tmp"),
    pytest.param("Cannot find module '/usr/src/app/config/production.json'", PATH, id="path-usr"),
    pytest.param("build step failed in /builds/acme/shop/src/orders.py", PATH, id="path-source-extension"),
    pytest.param("plugin /data/plugins/export.so could not be loaded", PATH, id="path-binary-extension"),
    pytest.param("open /Users/jane/dev/shop/orders.csv: no such file", PATH, id="path-macos-home"),
    pytest.param("Could not find a part of the path 'C:\\inetpub\\wwwroot\\App_Data\\orders.xml'.", PATH, id="path-windows"),
    pytest.param("export to D:/exports/2024/orders.csv failed", PATH, id="path-windows-forward-slashes"),
    pytest.param("share \\\\fileserver01\\exports is offline", PATH, id="path-unc"),
    pytest.param("loaded file:///home/deploy/app/index.html", PATH, id="path-file-url"),
    pytest.param('{"error":"cannot read \\/var\\/www\\/html\\/.env"}', PATH, id="path-json-escaped-slashes"),
    pytest.param('{"error":"upload failed:\\n/var/lib/shop/uploads/42.pdf"}', PATH, id="path-json-escaped-line-start"),
    pytest.param('{"error":"upload failed:\\n\\/var\\/lib\\/shop"}', PATH, id="path-json-escaped-line-and-slashes"),
    pytest.param(crlf("Upload failed.\nTarget: /srv/media/avatars/7.png\nTry again."), PATH, id="path-embedded-crlf"),
]

SAFE = [
    "Version conflict: document 42 was modified",
    "Email is already taken",
    "Not found: /documents/42",
    "Rate limit exceeded, retry in 30 seconds",
    "Invalid value for field 'email'",
    "Please select a valid date",
    "The order was updated at 12:03 by another user",
    "See https://docs.example.com/errors/409",
    '{"message": "Please select a plan", "code": "plan_required"}',
    "Please update your profile and select a plan",
    "Delete failed: item is locked",
    "Updated from another device",
    "Select one from the list",
    "Select the size From the menu",
    "See https://example.com/@team/help?x=a:b@c",
    "Contact us at support@example.com or https://example.com/contact",
    "SELECT a plan from the list",
    "Please create a table of contents",
    "Drop the table cloth",
    "Alter the table layout",
    "Please select items from stock where available",
    "Please select date, time from the menu",
    "Insert coin into slot (max 3)",
    "Delete from cart where possible",
    "Could not update order #42: payment declined",
    "Don't panic: your order is safe",
    "Order 42 was placed at 10:15 (UTC)",
    "We will call you at noon (12:30:45)",
    "Go back to https://shop.example.com/app/orders and try again",
    "Invalid path: /api/v2/orders/abc",
    "Path /static/logo.svg not found",
    "Upload avatar.png failed: only .jpg and .png are allowed",
    "Use the format YYYY-MM-DD, e.g. 2024-05-01",
    "Field 'name' must be between 1 and 100 characters",
    "Precondition failed: If-Match does not match the current ETag \"v6-doc\"",
    "Payment from account 1234 to account 5678 failed",
    "Ratio must be 1:2 or 2:3",
    "Thread 'billing' is locked by another editor",
    "Items: shirts, shoes ... 3 more",
    "Error in line 3 of your CSV upload: expected 5 columns, found 4",
    "Your file orders.csv has an invalid header",
    "The update to your subscription takes effect on 2024-06-01",
    "Retry-After: 120",
    "Too many requests.\r\nPlease wait a minute.\r\n",
    'File "orders.csv", line 3: invalid date',
    "Read the guide at https://example.com/app/help.js",
    "Step A:\\nFill in the form",
    "Conflict\nThe document changed while you were editing it.\nReload it and apply your changes again.",
]


# .NET's exception line is joined to the frame after it, rather than matched with it as one pattern.
EXCEPTION = "System.InvalidOperationException: Sequence contains no elements"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(f"{EXCEPTION}\r\n   at lambda_method12(Closure , Object )", DOTNET, id="frame-on-the-next-line"),
        pytest.param(f"{EXCEPTION} at Run()", DOTNET, id="frame-on-the-same-line"),
        pytest.param(f'{{"trace": "{EXCEPTION}\\r\\n   at Run()"}}', DOTNET, id="json-escaped"),
        pytest.param("Microsoft.Data.ConnectionException: lost\n\n  at Open()", DOTNET, id="microsoft-blank-lines"),
        pytest.param(f"{EXCEPTION}{' x' * 500} at Run()", None, id="frame-past-the-window"),
        pytest.param(f"{EXCEPTION}\n{' ' * 25}at Run()", None, id="too-many-blanks-after-the-break"),
        pytest.param(f"{EXCEPTION}\nWe looked at it", None, id="words-after-the-break"),
        pytest.param(f"{EXCEPTION}\n" * 3 + "Retry at noon", None, id="many-lines-no-frame"),
        pytest.param(f"{EXCEPTION[:-40]}:\n   at Run()", None, id="not-an-exception-type"),
    ],
)
def test_dotnet_exception_line_needs_a_frame_after_it(text: str, reason: str | None) -> None:
    assert unsafe_reason(text) == reason
    assert unsafe_reason(f"{'Please select a plan. ' * 20}\n{text}") == reason  # the long-text path too


@pytest.mark.parametrize(("text", "reason"), UNSAFE)
def test_unsafe_texts_name_their_reason(text: str, reason: str) -> None:
    assert unsafe_reason(text) == reason
    assert not is_safe(text)


@pytest.mark.parametrize(("text", "reason"), UNSAFE)
def test_unsafe_texts_inside_long_messages(text: str, reason: str) -> None:
    # Past a few hundred characters each pattern searches on its own.
    prose = "The order was updated at 12:03 by another user; please select a plan. " * 10
    assert unsafe_reason(f"{prose}\n{text}\n{prose}") == reason


@pytest.mark.parametrize("text", SAFE, ids=lambda text: text[:40])
def test_client_messages_are_safe(text: str) -> None:
    assert unsafe_reason(text) is None
    assert is_safe(text)


def test_safe_messages_together_are_safe() -> None:
    assert unsafe_reason("\n".join(SAFE) * 20) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(
            {"error": {"message": "boom", "debug": {"trace": 'Traceback (most recent call last):\n  File "/app/x.py", line 12, in f'}}},
            PYTHON,
            id="nested-dict",
        ),
        pytest.param(
            {"errors": [{"message": "ok"}, {"message": "ok", "meta": ["a", "\tat com.acme.Foo.bar(Foo.java:12)"]}]},
            JAVA,
            id="list-in-list",
        ),
        pytest.param({"details": {"/var/www/html/index.php": "line 3"}}, PATH, id="key"),
        pytest.param({"Traceback (most recent call last)": None}, PYTHON, id="key-at-top"),
        pytest.param(
            ["Traceback (most recent call last):", '  File "/srv/api/app.py", line 7, in handler', "KeyError: 'id'"],
            PYTHON,
            id="trace-split-into-lines",
        ),
        pytest.param([[[[{"a": [1, True, None, 2.5, {"b": "UPDATE orders SET total = 0 WHERE id = 1"}]}]]]], SQL, id="deep"),
        pytest.param("SELECT * FROM users", SQL, id="bare-string"),
        # Document order decides, not the order of the categories.
        pytest.param({"a": "SELECT * FROM t", "b": "Traceback (most recent call last)"}, SQL, id="first-wins"),
        pytest.param({"b": "Traceback (most recent call last)", "a": "SELECT * FROM t"}, PYTHON, id="first-wins-reversed"),
        pytest.param({"/app/x.py": "Traceback (most recent call last)"}, PATH, id="key-before-value"),
        pytest.param({"title": "Conflict", "extras": ("fine", "/opt/app/bin/run.jar")}, PATH, id="tuple"),
    ],
)
def test_unsafe_strings_anywhere_in_json(value: object, reason: str) -> None:
    assert find_unsafe_in_json(value) == reason


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"type": "about:blank", "title": "Conflict", "status": 409, "detail": "Version conflict: document 42 was modified"}, id="problem"),
        pytest.param({"error": {"code": 409, "message": "Email is already taken", "fields": ["email"], "retry": False}}, id="envelope"),
        pytest.param([{"field": f"items[{i}].qty", "message": "Please select a valid quantity"} for i in range(500)], id="many-errors"),
        pytest.param([None, 1, 2.5, True, [], {}], id="scalars"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
    ],
)
def test_safe_json_is_safe(value: object) -> None:
    assert find_unsafe_in_json(value) is None


def nested(depth: int) -> object:
    """`depth` containers, lists and objects in turn, around one string."""
    value: object = "ok"
    for level in range(depth):
        value = [value] if level % 2 else {"inner": value}
    return value


def test_json_nested_too_deeply_fails_closed() -> None:
    assert find_unsafe_in_json(nested(MAX_DEPTH)) is None
    assert find_unsafe_in_json(nested(MAX_DEPTH + 1)) == TOO_DEEP


def test_json_with_too_many_values_fails_closed() -> None:
    # The list itself is one of the values.
    assert find_unsafe_in_json(["ok"] * (MAX_VALUES - 1)) is None
    assert find_unsafe_in_json(["ok"] * MAX_VALUES) == TOO_LARGE



# --- Time: a hostile body is scanned in bounded time ----------------------------------------------

BODY = 64 * 1024  # max_error_body's default
BUDGET = 0.050  # seconds for one body: the event loop waits while a body is scanned

# Pieces of every shape scrub knows: the literals its patterns start with and what follows them.
FRAGMENTS = {
    "python": ["Traceback (most recent call last)", 'File "', 'File \\"', "a.py", '", line 1', '", line 1, in ', "\n"],
    "java": ["at ", "\tat ", "a.", "$", "/", "(", "a.java", ":1", ")", "Native Method", 'Exception in thread "',
             "Caused by: ", "A", "\t... ", "1 more", "@", "-"],
    "dotnet": [":line ", ".cs:line ", "System.", "Microsoft.", "a.", "AException", "Exception:", " ", "\n", "\\n",
               "at ", "   at ", "a`", "<", ">", "[", ",", "]", "(", ")", "--- End of "],
    "php": ["Stack trace:", "<br>", "<br />", "#0 ", "#1 ", "a.php(", "1): ", "{main}", "PHP ", "Fatal error", "in ",
            "<b>", "</b>", ".php", " on line ", ":1", " "],
    "node": ["at ", "async ", "new ", "a ", "(", "node:", "file:", "webpack:", "/", "./", "../", "C:\\", "a.js",
             ":1", ":1:1", ")", "native", "<anonymous>", "index 1", "Object.<anonymous>", "@"],
    "go": ["goroutine ", "1 ", "[", "running", "]:", "panic: ", "\npanic: ", "\\npanic: ", ".go:1 +0x", "a",
           "[signal SIG", "A", "fatal error: "],
    "ruby": [".rb:1:in ", "`", "'", "from ", "a", "/", ":1", ":1:in "],
    "rust": ["thread '", "a", "' panicked at ", "'"],
    "sql": ["SELECT ", "select ", "DISTINCT ", "TOP (1) ", "*", "a", "a.", '"a"', "`a`", "[a]", "f(", ")", ",", ", ",
            " AS ", " FROM ", " from ", " WHERE ", "a = ", " JOIN ", "(", "INSERT ", "INTO ", "UPDATE ", " SET ",
            "DELETE ", "ORDER BY ", "LIMIT ", "Duplicate entry '", "Table '", "ER_A", "Msg 1, Level 1, State ",
            "SQL", "Sql", "Exception", 'relation "', 'column "', " ", "\n"],
    "path": ["/", "/$", "$", "\\", "\\\\", "\\/", "a", ".", ".py", ":", "C:", "C:\\", "C:/", "\\n", "\\t", "var",
             "/var", "/var/", "file://", "-", "~", "@", "+", " "],
}
# Shapes that once took hundreds of milliseconds: each attempt read far ahead, from every one of
# thousands of starts.
KNOWN_SLOW = [
    "System.Exception:", "System.Exception:" + " " * 20, "System.AException: \\r \\n ", "Microsoft.AException:",
    "/$", "/" + "a." * 127 + "$", "   at ", "\\",
]


def repeat(piece: str, size: int = BODY) -> str:
    return (piece * (size // len(piece) + 1))[:size]


def hostile_bodies(rng: random.Random) -> list[str]:
    """A few hundred 64 KiB texts built to make a pattern read far or backtrack."""
    bodies = [repeat(piece) for piece in KNOWN_SLOW]
    every = sorted({piece for pieces in FRAGMENTS.values() for piece in pieces})
    bodies += [repeat(piece) for piece in every]
    # Each unsafe sample cut short, repeated: partial matches of the pattern that finds it.
    samples = [text for text, _ in (param.values for param in UNSAFE)]
    for sample in rng.sample(samples, 40):
        bodies.append(repeat(sample[: rng.randrange(3, len(sample))]))
    for pieces in FRAGMENTS.values():
        bodies += [repeat("".join(rng.choices(pieces, k=rng.randint(2, 6)))) for _ in range(8)]
        bodies.append(repeat("".join(rng.choices(pieces, k=4000))))
        alphabet = sorted(set("".join(pieces)))
        bodies.append("".join(rng.choices(alphabet, k=BODY)))
    return bodies


def cpu_seconds(scan: Callable[[], object]) -> float:
    """The CPU time of one scan, what it keeps the event loop waiting: not what a busy machine
    adds, nor a collection of the test process's own garbage that happens to fall inside it."""
    gc.disable()
    try:
        start = time.process_time()
        scan()
        return time.process_time() - start
    finally:
        gc.enable()


def scan_seconds(text: str, runs: int = 1) -> float:
    best = float("inf")
    for run in range(runs):
        # A different last character each run: scrub keeps the verdict on the last long text.
        variant = text[:-1] + "\x00\x01\x02\x03\x04"[run % 5]
        best = min(best, cpu_seconds(lambda: unsafe_reason(variant)))
    return best


def slowest(bodies: list[str], keep: int = 5) -> list[tuple[float, str]]:
    """The slowest bodies, each timed again as the best of three: a busy machine only adds time."""
    first = sorted(((scan_seconds(body), body) for body in bodies), key=lambda pair: pair[0], reverse=True)
    return sorted(((scan_seconds(body, 3), body) for _, body in first[:keep]), key=lambda pair: pair[0], reverse=True)


@pytest.fixture(scope="module")
def worst_bodies() -> list[tuple[float, str]]:
    return slowest(hostile_bodies(random.Random(6901)))


def test_hostile_bodies_are_scanned_within_budget(worst_bodies) -> None:
    seconds, body = worst_bodies[0]
    assert seconds < BUDGET, f"{seconds * 1000:.0f} ms for {body[:60]!r}..."


def test_scan_time_grows_linearly(worst_bodies) -> None:
    # 16 times the text in 16 times the time, 64 with room for a busy machine: a quadratic scan takes 256.
    for _, body in worst_bodies[:3]:
        small, large = scan_seconds(body, 3), scan_seconds(repeat(body, 16 * BODY), 2)
        assert large < 64 * max(small, 0.002), f"{small * 1000:.1f} ms, then {large * 1000:.1f} ms: {body[:60]!r}"
        assert large < 16 * BUDGET


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda run: [f"{run}{index:x}" for index in range(12_000)], id="many-short-strings"),
        pytest.param(lambda run: [repeat("\tat a.", 300) + f"{run}{index:03}" for index in range(200)], id="long-strings"),
        pytest.param(lambda run: {f"System.Exception:{run}{index}": repeat("/$", 250) for index in range(200)},
                     id="keys-and-values"),
        pytest.param(lambda run: {"detail": repeat(KNOWN_SLOW[1], BODY - 20) + str(run)}, id="one-long-string"),
    ],
)
def test_hostile_json_is_scanned_within_budget(build) -> None:
    best = float("inf")
    for run in range(3):
        value = build(run)  # new strings each run: a verdict kept from the last run would cost nothing
        best = min(best, cpu_seconds(lambda: find_unsafe_in_json(value)))
    assert best < BUDGET


@pytest.mark.parametrize("media_type", ["text/html", "application/xml"])
def test_hostile_html_and_xml_bodies_are_rewritten_within_budget(media_type: str) -> None:
    # The body is read for the log and for the detail: once, not twice.
    best = float("inf")
    for run in range(3):
        text = f"<html><head><title>Conflict {run}</title></head><body>{repeat(KNOWN_SLOW[1])}</body></html>"
        reply = UpstreamReply(500, {"Content-Type": f"{media_type}; charset=utf-8"}, text.encode())
        problems = []
        best = min(best, cpu_seconds(lambda: problems.append(normalize(
            ErrorPolicy(), reply, parse(reply, reply.body), None, instance="/x", request_id="r"))))
        assert problems[0].status == 500
    assert best < BUDGET


def test_html_body_is_scanned_once(monkeypatch) -> None:
    # normalize reads an HTML body for the log, then before taking its title as the detail:
    # the second reading is answered from the first, so the rewrite costs one scan, not two.
    from proxy.core import scrub

    long_scans: list[int] = []
    scan = scrub._reason

    def counted(text: str) -> str | None:
        if len(text) > scrub._SHORT:
            long_scans.append(len(text))
        return scan(text)

    monkeypatch.setattr(scrub, "_reason", counted)
    page = "<html><head><title>Conflict</title></head><body>{}</body></html>"
    reply = UpstreamReply(500, {"Content-Type": "text/html"}, page.format(repeat("at ") + " 1.").encode())
    problem = normalize(ErrorPolicy(), reply, parse(reply, reply.body), None, instance="/x", request_id="r")
    assert problem.detail == "Conflict"
    assert len(long_scans) == 1
