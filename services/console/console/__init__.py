"""The console: the web application agents and supervisors work in (server-rendered pages over
the router's, SLA's and feedback's APIs, live through server-sent events fed from Kafka)."""
