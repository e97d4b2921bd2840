/* web_auth.c - who is at the console: Argon2id passwords (libsodium's
 * crypto_pwhash_str, interactive limits), sessions kept in PostgreSQL as
 * the SHA-256 of a random cookie token (sql/0011 web_sessions), a CSRF
 * token per session, and the lock-out of a name after [web] lockout_after
 * failed logins in a row (web_lockouts). At most `concurrency` password
 * checks run at once (each takes 64 MiB): a login flood waits, it does
 * not take the memory. */
#include <ctype.h>
#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
#include "web.h"

static sem_t verify_slots;
static char dummy_hash[crypto_pwhash_STRBYTES];

int
web_auth_init(int concurrency)
{
	if (sodium_init() < 0)
		return -EIO;
	if (sem_init(&verify_slots, 0, (unsigned)concurrency) < 0)
		return -errno;
	{
		unsigned char pw[16];

		randombytes_buf(pw, sizeof(pw));
		if (crypto_pwhash_str(dummy_hash, (const char *)pw, sizeof(pw),
				      crypto_pwhash_OPSLIMIT_INTERACTIVE,
				      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
			return -ENOMEM;
	}
	return 0;
}

void
web_auth_finish(void)
{
	sem_destroy(&verify_slots);
}

int
web_auth_hash(const char *password, char *ret)
{
	char out[crypto_pwhash_STRBYTES];

	_Static_assert(crypto_pwhash_STRBYTES <= WEB_PWHASH_LEN, "WEB_PWHASH_LEN too small");
	if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return -ENOMEM;
	memcpy(ret, out, sizeof(out));
	return 0;
}

bool
web_auth_verify(const char *hash, const char *password)
{
	bool ok;

	while (sem_wait(&verify_slots) < 0 && errno == EINTR)
		;
	ok = crypto_pwhash_str_verify(hash ? hash : dummy_hash, password, strlen(password)) == 0;
	sem_post(&verify_slots);
	return ok && hash;
}

static const char *const role_names[] = {
	[WEB_VIEWER] = "viewer", [WEB_OPERATOR] = "operator", [WEB_ADMIN] = "admin"
};

const char *
web_role_name(enum web_role r)
{
	return (unsigned)r <= WEB_ADMIN ? role_names[r] : "?";
}

int
web_role_parse(const char *s, enum web_role *ret)
{
	for (int i = 0; i <= WEB_ADMIN; i++)
		if (strcmp(s, role_names[i]) == 0) {
			*ret = (enum web_role)i;
			return 0;
		}
	return -EINVAL;
}

bool
web_name_is_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > WEB_NAME_MAX)
		return false;
	for (; *name; name++)
		if (!isalnum((unsigned char)*name) && !strchr("_.@-", *name))
			return false;
	return true;
}

/* The SHA-256 of the token as bytea input text ("\x" and 64 hex digits). */
static void
token_hash_text(const char *token, char *out /* 67 */)
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	out[0] = '\\';
	out[1] = 'x';
	sodium_bin2hex(out + 2, 65, h, sizeof(h));
}

static void
random_hex(char *out /* 65 */)
{
	unsigned char b[32];

	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(out, 65, b, sizeof(b));
}

static int
fill_session(PGresult *res, struct web_session *s)
{
	enum web_role role;

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(res, 0, 0));
	if (web_role_parse(PQgetvalue(res, 0, 1), &role) < 0)
		role = WEB_VIEWER;
	s->role = role;
	s->sites = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
	if (!json_is_array(s->sites)) {
		json_decref(s->sites);
		s->sites = json_array();
	}
	snprintf(s->csrf, sizeof(s->csrf), "%s", PQgetvalue(res, 0, 3));
	return s->sites ? 0 : -ENOMEM;
}

static void
ms_text(int64_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%lld milliseconds", (long long)ms);
}

/* Whether `name` is locked out now: 1 with *ret_retry_s (seconds left,
 * at least 1), 0, or -EIO. `lock`: FOR UPDATE (inside a transaction). */
static int
locked_for(PGconn *conn, const char *name, bool lock, long *ret_retry_s)
{
	PGresult *res = WEB_QUERY(
		conn, "login: lock-out",
		lock ? "SELECT ceil(extract(epoch FROM locked_until - now()))::bigint"
		       "  FROM web_lockouts WHERE name = $1 AND locked_until > now() FOR UPDATE" :
		       "SELECT ceil(extract(epoch FROM locked_until - now()))::bigint"
		       "  FROM web_lockouts WHERE name = $1 AND locked_until > now()",
		name);
	int rc;

	if (!res)
		return -EIO;
	rc = PQntuples(res) > 0;
	if (rc) {
		*ret_retry_s = atol(PQgetvalue(res, 0, 0));
		if (*ret_retry_s < 1)
			*ret_retry_s = 1;
	}
	PQclear(res);
	return rc;
}

static bool
exec_ok(PGconn *conn, const char *what, const char *sql)
{
	PGresult *res = web_db_query(conn, what, sql, 0, NULL);

	PQclear(res);
	return res != NULL;
}

int
web_login(struct web_db *db, const struct web_config *wc, const char *name, const char *password,
	  const char *addr, enum web_login_result *ret_result, char *ret_cookie,
	  struct web_session *ret_sess, long *ret_retry_s)
{
	PGconn *conn;
	PGresult *res;
	char *hash = NULL, token[65], th[67], ttl[48], lock_ms[48], after[24];
	bool ok;
	int err, locked;

	if (!web_name_is_valid(name)) {
		/* Not a name anybody has: the same work and answer as a wrong password. */
		(void)web_auth_verify(NULL, password);
		*ret_result = WEB_LOGIN_BAD;
		return 0;
	}
	err = web_db_acquire(db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return err;
	locked = locked_for(conn, name, false, ret_retry_s);
	if (locked < 0)
		goto fail;
	if (locked) {
		web_db_release(db, conn);
		*ret_result = WEB_LOGIN_LOCKED;
		return 0;
	}
	res = WEB_QUERY(conn, "login: operator", "SELECT pwhash FROM operators WHERE name = $1",
			name);
	if (!res)
		goto fail;
	if (PQntuples(res) > 0)
		hash = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	/* The check takes long and may wait for a slot: the connection goes
	 * back to the pool meanwhile, so that logins do not starve the rest. */
	web_db_release(db, conn);
	ok = web_auth_verify(hash, password);
	free(hash);
	err = web_db_acquire(db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return err;
	/* Logins of one name at once all pass the first check before any
	 * of them fails: the lock-out is decided again now, so that a lock
	 * taken meanwhile holds (the right password is refused too) and is
	 * neither counted on nor lifted by the failures still under way. */
	if (!ok) {
		ms_text(wc->lockout_time, lock_ms, sizeof(lock_ms));
		snprintf(after, sizeof(after), "%lld", (long long)wc->lockout_after);
		/* A failure in a row more; the one that reaches lockout_after
		 * locks the name and starts the count again. No row comes
		 * back when the name is locked: then nothing changes. */
		res = WEB_QUERY(conn, "login: failure",
				"INSERT INTO web_lockouts AS l (name, failures, last_failure,"
				"                            locked_until)"
				" VALUES ($1, CASE WHEN $2::int <= 1 THEN 0 ELSE 1 END, now(),"
				"         CASE WHEN $2::int <= 1 THEN now() + $3::interval END)"
				" ON CONFLICT (name) DO UPDATE SET"
				"   failures = CASE WHEN l.failures + 1 >= $2::int THEN 0"
				"                   ELSE l.failures + 1 END,"
				"   last_failure = now(),"
				"   locked_until = CASE WHEN l.failures + 1 >= $2::int"
				"                       THEN now() + $3::interval END"
				" WHERE l.locked_until IS NULL OR l.locked_until <= now()"
				" RETURNING 1",
				name, after, lock_ms);
		if (!res)
			goto fail;
		locked = PQntuples(res) == 0;
		PQclear(res);
		if (locked && locked_for(conn, name, false, ret_retry_s) <= 0)
			*ret_retry_s = 1;
		web_db_release(db, conn);
		*ret_result = locked ? WEB_LOGIN_LOCKED : WEB_LOGIN_BAD;
		return 0;
	}
	if (!exec_ok(conn, "login: begin", "BEGIN"))
		goto fail;
	locked = locked_for(conn, name, true, ret_retry_s);
	if (locked < 0)
		goto fail;
	if (locked) {
		(void)exec_ok(conn, "login: rollback", "ROLLBACK");
		web_db_release(db, conn);
		*ret_result = WEB_LOGIN_LOCKED;
		return 0;
	}
	res = WEB_QUERY(conn, "login: reset", "DELETE FROM web_lockouts WHERE name = $1", name);
	if (!res)
		goto fail;
	PQclear(res);
	random_hex(token);
	token_hash_text(token, th);
	{
		char csrf[65];

		random_hex(csrf);
		ms_text(wc->session_ttl, ttl, sizeof(ttl));
		res = WEB_QUERY(
			conn, "login: session",
			"WITH s AS (INSERT INTO web_sessions (token_hash, operator, csrf, addr,"
			"                                     expires_at)"
			"           VALUES ($1::bytea, $2, $3, $4, now() + $5::interval)"
			"           RETURNING operator, csrf)"
			"SELECT o.name, o.role, array_to_json(o.sites)::text, s.csrf"
			"  FROM s JOIN operators o ON o.name = s.operator",
			th, name, csrf, addr, ttl);
		sodium_memzero(csrf, sizeof(csrf));
	}
	if (!res)
		goto fail;
	if (PQntuples(res) != 1 || fill_session(res, ret_sess) < 0) {
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (!exec_ok(conn, "login: commit", "COMMIT")) {
		web_session_clear(ret_sess);
		goto fail;
	}
	web_db_release(db, conn);
	memcpy(ret_cookie, token, sizeof(token));
	sodium_memzero(token, sizeof(token));
	*ret_result = WEB_LOGIN_OK;
	return 0;
fail:
	/* web_db_release() rolls back a transaction left open. */
	web_db_release(db, conn);
	return -EIO;
}

/* Whether `token` looks like ours: 64 lower-case hex digits. */
static bool
is_token(const char *token)
{
	if (strlen(token) != 64)
		return false;
	for (; *token; token++)
		if (!isxdigit((unsigned char)*token) || isupper((unsigned char)*token))
			return false;
	return true;
}

void
web_session_key(const char *token, char *ret)
{
	if (is_token(token))
		token_hash_text(token, ret);
	else
		ret[0] = '\0';
}

int
web_session_renew(PGconn *conn, const char *key)
{
	PGresult *res;
	int rc;

	if (!key[0])
		return -ENOENT;
	res = WEB_QUERY(conn, "session renewal",
			"UPDATE web_sessions SET seen_at = now()"
			" WHERE token_hash = $1::bytea AND expires_at > now()",
			key);
	if (!res)
		return -EIO;
	rc = strcmp(PQcmdTuples(res), "0") == 0 ? -ENOENT : 0;
	PQclear(res);
	return rc;
}

int
web_session_get(PGconn *conn, const struct web_config *wc, const char *token,
		struct web_session *ret_sess)
{
	char th[67], idle[48];
	PGresult *res;
	int rc;

	if (!is_token(token))
		return -ENOENT;
	token_hash_text(token, th);
	ms_text(wc->idle_timeout, idle, sizeof(idle));
	res = WEB_QUERY(conn, "session",
			"WITH s AS (UPDATE web_sessions SET seen_at = now()"
			"            WHERE token_hash = $1::bytea AND expires_at > now()"
			"              AND seen_at > now() - $2::interval"
			"            RETURNING operator, csrf)"
			"SELECT o.name, o.role, array_to_json(o.sites)::text, s.csrf"
			"  FROM s JOIN operators o ON o.name = s.operator",
			th, idle);
	if (!res)
		return -EIO;
	rc = PQntuples(res) == 1 ? fill_session(res, ret_sess) : -ENOENT;
	PQclear(res);
	return rc;
}

int
web_session_end(PGconn *conn, const char *token)
{
	char th[67];
	PGresult *res;

	if (!is_token(token))
		return 0;
	token_hash_text(token, th);
	res = WEB_QUERY(conn, "logout", "DELETE FROM web_sessions WHERE token_hash = $1::bytea",
			th);
	if (!res)
		return -EIO;
	PQclear(res);
	return 0;
}

int
web_sessions_purge(PGconn *conn, const struct web_config *wc)
{
	char idle[48];
	PGresult *res;

	ms_text(wc->idle_timeout, idle, sizeof(idle));
	res = WEB_QUERY(
		conn, "purging sessions",
		"WITH a AS (DELETE FROM web_sessions WHERE expires_at <= now()"
		"             OR seen_at <= now() - $1::interval RETURNING 1),"
		"     b AS (DELETE FROM web_lockouts WHERE (locked_until IS NULL"
		"             OR locked_until < now()) AND last_failure < now() - interval '1 day'"
		"           RETURNING 1)"
		"SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)",
		idle);
	if (!res)
		return -EIO;
	if (atol(PQgetvalue(res, 0, 0)) > 0)
		log_info("%s expired session(s) removed", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

void
web_session_clear(struct web_session *s)
{
	json_decref(s->sites);
	sodium_memzero(s, sizeof(*s));
}

bool
web_session_has_site(const struct web_session *s, const char *site)
{
	size_t i;
	json_t *v;

	if (json_array_size(s->sites) == 0)
		return true;
	json_array_foreach(s->sites, i, v) if (json_is_string(v) &&
					       strcmp(json_string_value(v), site) == 0) return true;
	return false;
}

char *
web_session_sites_param(const struct web_session *s)
{
	char *text;

	if (json_array_size(s->sites) == 0)
		return NULL;
	text = json_dumps(s->sites, JSON_COMPACT);
	/* Out of memory: no site rather than every site. */
	return text ? text : strdup("[\"\"]");
}
