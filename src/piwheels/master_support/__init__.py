"""What the master's tasks (:mod:`piwheels.master`, a module each) are built on, kept apart from
them: the task loop (task.py), the master's settings (config.py), asking the Oracles and the
File Juggler without waiting (request_pool.py, db_client.py), asking for pages
(web_requests.py), reporting status (status.py), the Slave Driver's record of each slave
(slaves.py), and the child processes tasks hand work to (children.py, fetch_workers.py)."""
