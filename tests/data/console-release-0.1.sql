-- A console database written by release 0.1 (sqlite-utils schema, PRAGMA user_version = 1,
-- no alembic_version), for the `db upgrade` test. Made by the store of commit 52d359f.
PRAGMA user_version = 1;
BEGIN TRANSACTION;
CREATE TABLE "availability_log" (
   "id" TEXT PRIMARY KEY,
   "device_id" TEXT,
   "state" TEXT,
   "session" INTEGER,
   "reason" TEXT,
   "time" TEXT,
   "received_at" TEXT,
   "applied" INTEGER,
   "payload" TEXT
);
INSERT INTO "availability_log" VALUES('01a241c4-6d6c-7795-acfb-1ebac2ce503c','kiosk-l1','online',1,NULL,'2026-12-04T15:55:21.836Z','2026-11-24T10:00:00.000Z',1,'{"schema": "availability@1", "id": "01a241c4-6d6c-7795-acfb-1ebac2ce503c", "device_id": "kiosk-l1", "seq": 1, "time": "2026-12-04T15:55:21.836Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "state": "online", "session": 1, "agent_version": "1.4.2"}');
INSERT INTO "availability_log" VALUES('01a241c4-6d6e-750e-9926-45b7279eacab','kiosk-l2','online',1,NULL,'2026-12-04T15:55:21.838Z','2026-11-24T10:00:00.000Z',1,'{"schema": "availability@1", "id": "01a241c4-6d6e-750e-9926-45b7279eacab", "device_id": "kiosk-l2", "seq": 1, "time": "2026-12-04T15:55:21.838Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "state": "online", "session": 1, "agent_version": "1.4.2"}');
CREATE TABLE "command_results" (
   "id" TEXT PRIMARY KEY,
   "device_id" TEXT,
   "command_id" TEXT,
   "status" TEXT,
   "time" TEXT,
   "received_at" TEXT,
   "payload" TEXT
);
CREATE TABLE "console_nodes" (
   "node_id" TEXT PRIMARY KEY,
   "seq" INTEGER
);
INSERT INTO "console_nodes" VALUES('console-1',2);
CREATE TABLE "crossings" (
   "id" TEXT PRIMARY KEY,
   "device_id" TEXT,
   "seq" INTEGER,
   "time" TEXT,
   "day" TEXT,
   "site" TEXT,
   "lane" TEXT,
   "direction" TEXT,
   "outcome" TEXT,
   "watchlist_version" INTEGER,
   "hit_count" INTEGER,
   "document_kind" TEXT,
   "clock_synced" INTEGER,
   "received_at" TEXT,
   "payload" TEXT NOT NULL
);
INSERT INTO "crossings" VALUES('01a241c4-6d6d-7744-8343-e4d7fbf6bdd4','kiosk-l1',1,'2026-12-04T15:55:21.837Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6d-7744-8343-e4d7fbf6bdd4", "device_id": "kiosk-l1", "seq": 1, "time": "2026-12-04T15:55:21.837Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6d-78ac-8eda-0a9d0a2cdfc8','kiosk-l1',2,'2026-12-04T15:55:21.837Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6d-78ac-8eda-0a9d0a2cdfc8", "device_id": "kiosk-l1", "seq": 2, "time": "2026-12-04T15:55:21.837Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6d-73c5-81d0-8b2bd89dd9d8','kiosk-l1',3,'2026-12-04T15:55:21.837Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6d-73c5-81d0-8b2bd89dd9d8", "device_id": "kiosk-l1", "seq": 3, "time": "2026-12-04T15:55:21.837Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6d-7b8b-86b4-0958d6edb668','kiosk-l1',4,'2026-12-04T15:55:21.837Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6d-7b8b-86b4-0958d6edb668", "device_id": "kiosk-l1", "seq": 4, "time": "2026-12-04T15:55:21.837Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6d-79d1-a12b-506aa9e4777e','kiosk-l1',5,'2026-12-04T15:55:21.837Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6d-79d1-a12b-506aa9e4777e", "device_id": "kiosk-l1", "seq": 5, "time": "2026-12-04T15:55:21.837Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6e-7d6c-8099-4841eda066ff','kiosk-l2',1,'2026-12-04T15:55:21.838Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6e-7d6c-8099-4841eda066ff", "device_id": "kiosk-l2", "seq": 1, "time": "2026-12-04T15:55:21.838Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6e-773d-9890-bf7c94e49f4f','kiosk-l2',2,'2026-12-04T15:55:21.838Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6e-773d-9890-bf7c94e49f4f", "device_id": "kiosk-l2", "seq": 2, "time": "2026-12-04T15:55:21.838Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6e-74b0-b9d2-5e0fd8b51df2','kiosk-l2',3,'2026-12-04T15:55:21.838Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6e-74b0-b9d2-5e0fd8b51df2", "device_id": "kiosk-l2", "seq": 3, "time": "2026-12-04T15:55:21.838Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6e-7e97-961d-435128e7befb','kiosk-l2',4,'2026-12-04T15:55:21.838Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6e-7e97-961d-435128e7befb", "device_id": "kiosk-l2", "seq": 4, "time": "2026-12-04T15:55:21.838Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
INSERT INTO "crossings" VALUES('01a241c4-6d6e-7657-80e9-fae809ec1e92','kiosk-l2',5,'2026-12-04T15:55:21.838Z','2026-12-04','bz-santa-elena','lane-1','entry','pass',1288,0,'cbic',1,'2026-11-24T10:00:00.000Z','{"schema": "crossing@1", "id": "01a241c4-6d6e-7657-80e9-fae809ec1e92", "device_id": "kiosk-l2", "seq": 5, "time": "2026-12-04T15:55:21.838Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "site": "bz-santa-elena", "lane": "lane-1", "direction": "entry", "document": {"kind": "cbic", "document_type": "IC", "category": "frequent-crosser", "issuing_state": "BLZ", "nationality": "MEX", "number": "CB4417820", "expiry_date": "2028-03-31", "birth_year": 1984}, "checks": [{"name": "cbic-signature", "result": "pass"}, {"name": "document-expiry", "result": "pass"}, {"name": "face-match", "result": "pass", "detail": "similarity 0.91"}], "screening": {"watchlist_version": 1288, "hit_count": 0, "hits": []}, "decision": {"outcome": "pass", "reasons": []}, "latency_ms": 842}');
CREATE TABLE "decisions" (
   "id" TEXT PRIMARY KEY,
   "crossing_id" TEXT,
   "hit_id" TEXT,
   "device_id" TEXT,
   "seq" INTEGER,
   "time" TEXT,
   "officer_id" TEXT,
   "decision" TEXT,
   "decided_at" TEXT,
   "received_at" TEXT,
   "payload" TEXT NOT NULL
);
CREATE TABLE "devices" (
   "device_id" TEXT PRIMARY KEY,
   "state" TEXT,
   "session" INTEGER,
   "agent_version" TEXT,
   "state_time" TEXT,
   "last_birth_at" TEXT,
   "last_offline_at" TEXT,
   "offline_reason" TEXT,
   "health" TEXT,
   "health_time" TEXT,
   "health_seq" INTEGER,
   "health_session" INTEGER,
   "health_received_at" TEXT,
   "last_seen_at" TEXT
);
INSERT INTO "devices" VALUES('kiosk-l1','online',1,'1.4.2','2026-12-04T15:55:21.836Z','2026-11-24T10:00:00.000Z',NULL,NULL,'{"schema": "health@1", "id": "01a241c4-6d6d-71cc-9fde-b6606019abe0", "device_id": "kiosk-l1", "seq": 7, "time": "2026-12-04T15:55:21.837Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "session": 1, "agent_version": "1.4.2", "uptime_s": 12596.4, "cpu": {"load_1m": 0.42, "load_5m": 0.37, "temperature_c": 58.4}, "memory": {"total_bytes": 4242141184, "available_bytes": 2871193600}, "disk": {"total_bytes": 62226169856, "free_bytes": 48112304128}, "components": {"card-reader": {"state": "ok", "since": "2026-11-24T06:00:02Z"}, "mrz-reader": {"state": "ok", "since": "2026-11-24T06:00:02Z"}, "camera": {"state": "ok", "since": "2026-11-24T06:00:03Z"}, "uplink": {"state": "ok", "since": "2026-11-24T06:00:04Z"}}, "watchlist": {"version": 1288, "applied_at": "2026-11-24T08:05:12Z", "age_s": 31.0}, "outbox": {"depth": 0, "oldest_age_s": null, "bytes": 0, "alarm": false}, "last_ack": "2026-11-24T09:29:41.870Z"}','2026-12-04T15:55:21.837Z',7,1,'2026-11-24T10:00:00.000Z','2026-11-24T10:00:00.000Z');
INSERT INTO "devices" VALUES('kiosk-l2','online',1,'1.4.2','2026-12-04T15:55:21.838Z','2026-11-24T10:00:00.000Z',NULL,NULL,'{"schema": "health@1", "id": "01a241c4-6d6f-7e19-972a-ae57c6a84a08", "device_id": "kiosk-l2", "seq": 7, "time": "2026-12-04T15:55:21.839Z", "clock": {"synced": true, "source": "ntp", "offset_ms": -2.4, "last_sync": "2026-11-24T05:58:11Z"}, "session": 1, "agent_version": "1.4.2", "uptime_s": 12596.4, "cpu": {"load_1m": 0.42, "load_5m": 0.37, "temperature_c": 58.4}, "memory": {"total_bytes": 4242141184, "available_bytes": 2871193600}, "disk": {"total_bytes": 62226169856, "free_bytes": 48112304128}, "components": {"card-reader": {"state": "ok", "since": "2026-11-24T06:00:02Z"}, "mrz-reader": {"state": "ok", "since": "2026-11-24T06:00:02Z"}, "camera": {"state": "ok", "since": "2026-11-24T06:00:03Z"}, "uplink": {"state": "ok", "since": "2026-11-24T06:00:04Z"}}, "watchlist": {"version": 1288, "applied_at": "2026-11-24T08:05:12Z", "age_s": 31.0}, "outbox": {"depth": 0, "oldest_age_s": null, "bytes": 0, "alarm": false}, "last_ack": "2026-11-24T09:29:41.870Z"}','2026-12-04T15:55:21.839Z',7,1,'2026-11-24T10:00:00.000Z','2026-11-24T10:00:00.000Z');
CREATE TABLE "hits" (
   "id" TEXT PRIMARY KEY,
   "crossing_id" TEXT,
   "device_id" TEXT,
   "seq" INTEGER,
   "time" TEXT,
   "site" TEXT,
   "lane" TEXT,
   "watchlist_version" INTEGER,
   "received_at" TEXT,
   "payload" TEXT NOT NULL
);
CREATE TABLE "quarantine" (
   "id" INTEGER PRIMARY KEY,
   "digest" TEXT,
   "received_at" TEXT,
   "last_received_at" TEXT,
   "times" INTEGER,
   "topic" TEXT,
   "device_id" TEXT,
   "record_id" TEXT,
   "reason" TEXT,
   "path" TEXT,
   "payload" BLOB
);
INSERT INTO "quarantine" VALUES(1,'217cd33566ae52afcc188c2d7598fe5581dba4a04394869415b3367e31309606','2026-11-24T10:00:00.000Z','2026-11-24T10:00:00.000Z',1,'borderlane/v1/devices/kiosk-l1/crossings','kiosk-l1',NULL,'payload is not JSON: Expecting value at 1:1','',X'6E6F74206A736F6E');
CREATE TABLE watchlist_chunks (
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    chunk_index INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, version, chunk_index)
) WITHOUT ROWID;
INSERT INTO "watchlist_chunks" VALUES('delta',2,0,'{"schema":"watchlist-delta-chunk@1","kind":"delta","from_version":1,"to_version":2,"chunk_count":1,"key_id":"wl-legacy","changes_sha256":"e461af4b95261a7a416209355611d4fa8fa21ed480326e79f4eb3c3ea8449a22","chunk_index":0,"changes":[{"op":"add","kind":"person","entry_id":"p-ortega","entry":{"names":[{"surname":"ORTEGA SALAS","given_names":"MARIA ELENA"}],"birth_date":"1984-07-09","list":"national-wanted","category":"wanted","action":"refer"}}],"signature":"ZSyiuZ8FoEhfMyq9I1j7NLaJJOVoeTqtefa+RPqXph0/gPEP3HPmFU2IBZHQplgsBh+qlgH+pq/thBGUR51DDA=="}');
INSERT INTO "watchlist_chunks" VALUES('snapshot',1,0,'{"schema":"watchlist-delta-chunk@1","kind":"snapshot","to_version":1,"chunk_count":1,"key_id":"wl-legacy","changes_sha256":"3c9b0c3f50af8d3a70edbcb79b5cf29ffc606ee52f829acaa279daf170cf028d","chunk_index":0,"changes":[{"op":"add","kind":"document","entry_id":"d1","entry":{"number":"G00000001","issuing_state":"MEX","status":"stolen","list":"interpol-sltd","action":"refer"}},{"op":"add","kind":"document","entry_id":"d2","entry":{"number":"G00000002","issuing_state":"MEX","status":"stolen","list":"interpol-sltd","action":"refer"}},{"op":"add","kind":"person","entry_id":"p-garcia","entry":{"names":[{"surname":"GARCIA LOPEZ","given_names":"JUAN CARLOS"}],"birth_date":"1975-03-02","list":"national-wanted","category":"wanted","action":"refer"}},{"op":"add","kind":"person","entry_id":"p-haddad","entry":{"names":[{"surname":"HADDAD","given_names":"SAMIR"}],"birth_date":"1981-11-20","list":"national-wanted","category":"wanted","action":"refer"}}],"signature":"1gP3dE5Lk/b9QJxOJDxJs17aFnp0EuWzpIorPpji0ymWALm/7y4xbezmV0jq95HWQTtl3ZierniMsXx4tkGDBw=="}');
CREATE TABLE watchlist_entries (
    kind TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (kind, entry_id)
) WITHOUT ROWID;
INSERT INTO "watchlist_entries" VALUES('document','d1','{"number":"G00000001","issuing_state":"MEX","status":"stolen","list":"interpol-sltd","action":"refer"}');
INSERT INTO "watchlist_entries" VALUES('document','d2','{"number":"G00000002","issuing_state":"MEX","status":"stolen","list":"interpol-sltd","action":"refer"}');
INSERT INTO "watchlist_entries" VALUES('person','p-garcia','{"names":[{"surname":"GARCIA LOPEZ","given_names":"JUAN CARLOS"}],"birth_date":"1975-03-02","list":"national-wanted","category":"wanted","action":"refer"}');
INSERT INTO "watchlist_entries" VALUES('person','p-haddad','{"names":[{"surname":"HADDAD","given_names":"SAMIR"}],"birth_date":"1981-11-20","list":"national-wanted","category":"wanted","action":"refer"}');
INSERT INTO "watchlist_entries" VALUES('person','p-ortega','{"names":[{"surname":"ORTEGA SALAS","given_names":"MARIA ELENA"}],"birth_date":"1984-07-09","list":"national-wanted","category":"wanted","action":"refer"}');
CREATE TABLE watchlist_versions (
    version INTEGER PRIMARY KEY,
    published_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    persons INTEGER NOT NULL,
    documents INTEGER NOT NULL,
    delta_chunks INTEGER,
    delta_changes INTEGER,
    delta_bytes INTEGER,
    snapshot_chunks INTEGER,
    snapshot_bytes INTEGER,
    snapshot_sha256 TEXT
);
INSERT INTO "watchlist_versions" VALUES(1,'2026-12-04T15:55:22.067Z','wl-legacy',2,2,NULL,4,NULL,1,1053,'3c9b0c3f50af8d3a70edbcb79b5cf29ffc606ee52f829acaa279daf170cf028d');
INSERT INTO "watchlist_versions" VALUES(2,'2026-12-04T15:55:22.069Z','wl-legacy',3,2,1,1,549,NULL,NULL,NULL);
CREATE INDEX "idx_crossings_site_day_outcome"
    ON "crossings" ("site", "day", "outcome");
CREATE INDEX "idx_crossings_day"
    ON "crossings" ("day");
CREATE INDEX "idx_crossings_time"
    ON "crossings" ("time");
CREATE INDEX "idx_crossings_device_id_seq"
    ON "crossings" ("device_id", "seq");
CREATE INDEX "idx_hits_crossing_id"
    ON "hits" ("crossing_id");
CREATE INDEX "idx_hits_site_time"
    ON "hits" ("site", "time");
CREATE INDEX "idx_hits_device_id_seq"
    ON "hits" ("device_id", "seq");
CREATE INDEX "idx_decisions_crossing_id"
    ON "decisions" ("crossing_id");
CREATE INDEX "idx_decisions_device_id_seq"
    ON "decisions" ("device_id", "seq");
CREATE UNIQUE INDEX "idx_quarantine_digest"
    ON "quarantine" ("digest");
CREATE INDEX "idx_quarantine_device_id_received_at"
    ON "quarantine" ("device_id", "received_at");
CREATE INDEX "idx_availability_log_device_id_received_at"
    ON "availability_log" ("device_id", "received_at");
CREATE INDEX "idx_command_results_command_id"
    ON "command_results" ("command_id");
COMMIT;
