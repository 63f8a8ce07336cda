"""The admin console: server-rendered pages under ``/console`` (see docs/console.md).

``console.py`` assembles the pages and installs the console into the gateway app;
``render.py`` renders templates; ``auth.py`` holds the session, role and CSRF dependencies;
``security.py`` the security headers and cookie policy; ``pages/`` one module per page.
"""
