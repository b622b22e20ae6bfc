"""What the master's tasks (:mod:`piwheels.master`, a module each) are built on, kept apart from
them: the task loop (task.py), the master's settings (config.py), asking the Oracles and the
File Juggler without waiting (request_pool.py, db_client.py), asking for pages
(web_requests.py), reporting status (status.py), the Slave Driver's parts (its record of each
slave in slaves.py, slave ids in slave_ids.py, its picture of the queue in build_queue.py,
fetching and recording builds in build_collection.py, dropping slaves in lost_slaves.py), the
File Juggler's (its transfers in transfers.py, hashing and storing in file_store.py), and the
child processes tasks hand work to (children.py, fetch_workers.py)."""
