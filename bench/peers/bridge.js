// bridge.js - a minimal MQTT to PostgreSQL bridge, the kind a team writes in
// an afternoon: mqtt.js subscribes at QoS 1 with a persistent session, every
// message is acknowledged (PUBACK) on receipt, rows are buffered in memory and
// written by one multi-row INSERT per 500 rows (or every 50 ms). Not
// durable: a crash loses whatever is buffered, already acknowledged.
//
// usage: node bridge.js MQTT_URL PG_SOCKET_DIR PG_PORT DATABASE USER TABLE FILTER
'use strict';
const mqtt = require('mqtt');
const { Client } = require('pg');

const [url, pgHost, pgPort, database, user, table, filter] = process.argv.slice(2);
const BATCH = 500;
const pg = new Client({ host: pgHost, port: Number(pgPort), database, user });
let rows = [];
let writing = false;

async function flush() {
  if (writing || rows.length === 0) return;
  writing = true;
  while (rows.length > 0) {
    const batch = rows.splice(0, BATCH);
    const params = [];
    const values = batch.map((r, i) => {
      params.push(r[0], r[1]);
      return `($${2 * i + 1}, $${2 * i + 2}::jsonb)`;
    });
    await pg.query(`INSERT INTO ${table} (topic, payload) VALUES ${values.join(',')}`, params);
  }
  writing = false;
}

async function main() {
  await pg.connect();
  await pg.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, topic text NOT NULL,
                  payload jsonb NOT NULL, received timestamptz NOT NULL DEFAULT now())`);
  const c = mqtt.connect(url, { clientId: 'bench-bridge', clean: false, protocolVersion: 4 });
  c.on('connect', () => {
    c.subscribe(filter, { qos: 1 }, (err) => {
      if (err) throw err;
      console.log('subscribed');
    });
  });
  c.on('message', (topic, payload) => {
    rows.push([topic, payload.toString()]);
    if (rows.length >= BATCH) flush().catch((e) => { console.error(e); process.exit(1); });
  });
  setInterval(() => flush().catch((e) => { console.error(e); process.exit(1); }), 50);
}

main().catch((e) => { console.error(e); process.exit(1); });
