// Node-RED settings for bench/peers/run: no editor, no credentials, the flows
// from NODE_RED_FLOWS; the function node reaches PostgreSQL through `pg`
// (node-red-contrib-re-postgres pins pg 6, which never connects on Node 20).
module.exports = {
  flowFile: process.env.NODE_RED_FLOWS,
  credentialSecret: false,
  uiPort: Number(process.env.NODE_RED_PORT),
  uiHost: '127.0.0.1',
  httpAdminRoot: false,
  httpNodeRoot: false,
  functionGlobalContext: { pg: require('pg') },
  logging: { console: { level: 'warn', metrics: false, audit: false } },
  editorTheme: { tours: false },
};
