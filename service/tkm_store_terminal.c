/*
 * tkm_store_terminal.c - the SQL of the terminal registry: records, bound
 * keys, enrollment codes, last seen and the two histories. See
 * tkm_store_terminal.h. Inputs are checked here as far as the schema cares
 * (lengths, UTF-8, dates) so that a caller gets a sentence rather than a
 * constraint name; the schema's CHECKs and triggers stay the last word.
 */
#include <stdlib.h>
#include <string.h>

#include "tkm_cbor.h"
#include "tkm_store_internal.h"
#include "tkm_store_terminal.h"
#include "tkm_why.h"

#define V_INT(x)                                                                                   \
	{                                                                                          \
		.type = TKM_STORE_INT, .i = (int64_t)(x)                                           \
	}
#define V_TEXT(s)                                                                                  \
	{                                                                                          \
		.type = TKM_STORE_TEXT, .p = (s), .len = strlen(s)                                 \
	}
#define V_BLOB(b, n)                                                                               \
	{                                                                                          \
		.type = TKM_STORE_BLOB, .p = (b), .len = (n)                                       \
	}

/* Live records: the predicate of the partial index terminal_hw, word for word. */
#define LIVE "t.state NOT IN ('revoked', 'decommissioned')"

#define TERMINAL_COLUMNS                                                                           \
	"t.id, t.manufacturer, t.serial, t.model, t.merchant, t.site, t.grp, t.purchase_date, "    \
	"t.state, t.firmware_version, t.app_version, t.enrolled_at, t.last_seen, t.notes, "        \
	"t.created"
#define TERMINAL_NCOLUMNS 15

static const char *const state_names[] = {
    [TKM_STORE_TERMINAL_REGISTERED] = "registered",
    [TKM_STORE_TERMINAL_ACTIVE] = "active",
    [TKM_STORE_TERMINAL_SUSPENDED] = "suspended",
    [TKM_STORE_TERMINAL_REVOKED] = "revoked",
    [TKM_STORE_TERMINAL_DECOMMISSIONED] = "decommissioned",
};
#define NSTATES (sizeof(state_names) / sizeof(state_names[0]))

static const char *const action_names[] = {
    [TKM_STORE_CUSTODY_RECEIVED] = "received",
    [TKM_STORE_CUSTODY_RETURNED] = "returned",
};
#define NACTIONS (sizeof(action_names) / sizeof(action_names[0]))

/* names[i] for the i whose name is exactly (name, len), from 1; 0 if none. */
static size_t name_index(const char *const *names, size_t n, const char *name, size_t len)
{
	for (size_t i = 1; i < n; i++) {
		if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0) {
			return i;
		}
	}
	return 0;
}

const char *tkm_store_terminal_state_name(tkm_store_terminal_state s)
{
	return s > 0 && (size_t)s < NSTATES ? state_names[s] : NULL;
}

bool tkm_store_terminal_state_parse(const char *name, size_t len, tkm_store_terminal_state *out)
{
	size_t i = name_index(state_names, NSTATES, name, len);

	*out = (tkm_store_terminal_state)i;
	return i != 0;
}

const char *tkm_store_custody_action_name(tkm_store_custody_action a)
{
	return a > 0 && (size_t)a < NACTIONS ? action_names[a] : NULL;
}

bool tkm_store_custody_action_parse(const char *name, size_t len, tkm_store_custody_action *out)
{
	size_t i = name_index(action_names, NACTIONS, name, len);

	*out = (tkm_store_custody_action)i;
	return i != 0;
}

/* ---- SQLite plumbing ---- */

static const char *db_path(sqlite3 *db)
{
	const char *p = sqlite3_db_filename(db, "main");

	return p != NULL && p[0] != '\0' ? p : "(memory)";
}

typedef tkm_err (*row_fn)(sqlite3_stmt *s, void *arg, char *why, size_t why_len);

/*
 * Run a SELECT on db (the store's reader, or the writer's inside its
 * transaction) and call row() for each row. TKM_E_NOT_FOUND when there is
 * none; row()'s error stops the scan and is returned.
 */
static tkm_err query_on(sqlite3 *db, const char *sql, const tkm_store_val *vals, size_t n,
                        row_fn row, void *arg, char *why, size_t why_len)
{
	sqlite3_stmt *s = NULL;
	size_t rows = 0;
	tkm_err err = TKM_OK;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK ||
	    tkm_store_bind(s, vals, n) != SQLITE_OK) {
		err = tkm_store_db_fail(db, db_path(db), "cannot read terminals", why, why_len);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rows++;
		err = row(s, arg, why, why_len);
		if (err != TKM_OK) {
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		err = tkm_store_db_fail(db, db_path(db), "cannot read terminals", why, why_len);
	} else if (rows == 0) {
		err = TKM_E_NOT_FOUND;
	}
out:
	sqlite3_finalize(s);
	return err;
}

/* query_on with a reader connection of this call's own (tkm_store_reader_get). */
static tkm_err reader_query(tkm_store *st, const char *sql, const tkm_store_val *vals, size_t n,
                            row_fn row, void *arg, char *why, size_t why_len)
{
	sqlite3 *db = NULL;
	tkm_err err = tkm_store_reader_get(st, &db, why, why_len);

	if (err == TKM_OK) {
		err = query_on(db, sql, vals, n, row, arg, why, why_len);
	}
	tkm_store_reader_put(st, db);
	return err;
}

/* The last statement on tx failed on a UNIQUE or PRIMARY KEY constraint. */
static bool unique_violation(tkm_store_tx *tx)
{
	int x = sqlite3_extended_errcode(tx->db);

	return x == SQLITE_CONSTRAINT_UNIQUE || x == SQLITE_CONSTRAINT_PRIMARYKEY;
}

/* An INTEGER column >= 0; NULL gives 0. */
static bool col_u64(sqlite3_stmt *s, int i, uint64_t *out)
{
	sqlite3_int64 v;

	*out = 0;
	if (sqlite3_column_type(s, i) == SQLITE_NULL) {
		return true;
	}
	if (sqlite3_column_type(s, i) != SQLITE_INTEGER) {
		return false;
	}
	v = sqlite3_column_int64(s, i);
	if (v < 0) {
		return false;
	}
	*out = (uint64_t)v;
	return true;
}

/* A BLOB column of exactly len bytes into out. */
static bool col_fixed(sqlite3_stmt *s, int i, uint8_t *out, size_t len)
{
	const void *p;

	if (sqlite3_column_type(s, i) != SQLITE_BLOB) {
		return false;
	}
	p = sqlite3_column_blob(s, i);
	if (p == NULL || (size_t)sqlite3_column_bytes(s, i) != len) {
		return false;
	}
	memcpy(out, p, len);
	return true;
}

static tkm_err malformed(sqlite3_stmt *s, const char *table, char *why, size_t why_len)
{
	return tkm_why_fail(why, why_len, TKM_E_IO, "database %s: a %s row (%lld) is malformed",
	                    db_path(sqlite3_db_handle(s)), table,
	                    (long long)sqlite3_column_int64(s, 0));
}

/* ---- Checking inputs ---- */

/* A string of at most max bytes (plus its NUL within cap), UTF-8, no control bytes. */
static bool text_ok(const char *p, size_t max)
{
	size_t n = strnlen(p, max + 1);

	if (n > max || !tkm_cbor_utf8_valid((const uint8_t *)p, n)) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)p[i] < 0x20 && p[i] != '\t' && p[i] != '\n') {
			return false;
		}
	}
	return true;
}

static bool digits(const char *p, size_t n, unsigned *out)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			return false;
		}
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*out = v;
	return true;
}

/* YYYY-MM-DD naming a day of the proleptic Gregorian calendar (as SQLite's date()). */
static bool date_ok(const char *p)
{
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, m, d, last;

	if (strnlen(p, TKM_STORE_TERMINAL_DATE_LEN + 1) != TKM_STORE_TERMINAL_DATE_LEN ||
	    p[4] != '-' || p[7] != '-' || !digits(p, 4, &y) || !digits(p + 5, 2, &m) ||
	    !digits(p + 8, 2, &d) || m < 1 || m > 12) {
		return false;
	}
	last = mdays[m - 1];
	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
		last = 29;
	}
	return d >= 1 && d <= last;
}

/* A text value, or NULL for "" (absent fields are NULL in the database). */
static tkm_store_val v_opt(const char *s)
{
	tkm_store_val v = {.type = TKM_STORE_NULL};

	if (s != NULL && s[0] != '\0') {
		v.type = TKM_STORE_TEXT;
		v.p = s;
		v.len = strlen(s);
	}
	return v;
}

static tkm_err check_field(const char *name, const char *p, size_t max, bool required, char *why,
                           size_t why_len)
{
	if (!text_ok(p, max)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "%s must be UTF-8 text of at most %zu bytes", name, max);
	}
	if (required && p[0] == '\0') {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "%s is required", name);
	}
	return TKM_OK;
}

static tkm_err check_terminal(const tkm_store_terminal *t, char *why, size_t why_len)
{
	const struct {
		const char *name;
		const char *p;
		size_t max;
		bool required;
	} f[] = {
	    {"manufacturer", t->manufacturer, TKM_STORE_TERMINAL_FIELD_MAX, true},
	    {"serial", t->serial, TKM_STORE_TERMINAL_FIELD_MAX, true},
	    {"model", t->model, TKM_STORE_TERMINAL_FIELD_MAX, false},
	    {"merchant", t->merchant, TKM_STORE_TERMINAL_FIELD_MAX, false},
	    {"site", t->site, TKM_STORE_TERMINAL_FIELD_MAX, false},
	    {"group", t->group, TKM_STORE_TERMINAL_FIELD_MAX, false},
	    {"firmware version", t->firmware_version, TKM_STORE_TERMINAL_FIELD_MAX, false},
	    {"application version", t->app_version, TKM_STORE_TERMINAL_FIELD_MAX, false},
	    {"notes", t->notes, TKM_STORE_TERMINAL_NOTES_MAX, false},
	};
	tkm_err err;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		err = check_field(f[i].name, f[i].p, f[i].max, f[i].required, why, why_len);
		if (err != TKM_OK) {
			return err;
		}
	}
	if (t->purchase_date[0] != '\0' && !date_ok(t->purchase_date)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "purchase date must be a date as YYYY-MM-DD");
	}
	if (t->created_ms > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "creation time out of range");
	}
	return TKM_OK;
}

/* ---- Reading records ---- */

static tkm_err terminal_row(sqlite3_stmt *s, void *arg, char *why, size_t why_len)
{
	tkm_store_terminal *t = arg;
	char state[16];
	bool ok;

	memset(t, 0, sizeof(*t));
	t->id = sqlite3_column_int64(s, 0);
	ok = tkm_store_col_text(s, 1, t->manufacturer, sizeof(t->manufacturer), true);
	ok = tkm_store_col_text(s, 2, t->serial, sizeof(t->serial), true) && ok;
	ok = tkm_store_col_text(s, 3, t->model, sizeof(t->model), true) && ok;
	ok = tkm_store_col_text(s, 4, t->merchant, sizeof(t->merchant), true) && ok;
	ok = tkm_store_col_text(s, 5, t->site, sizeof(t->site), true) && ok;
	ok = tkm_store_col_text(s, 6, t->group, sizeof(t->group), true) && ok;
	ok = tkm_store_col_text(s, 7, t->purchase_date, sizeof(t->purchase_date), true) && ok;
	ok = tkm_store_col_text(s, 8, state, sizeof(state), true) && ok;
	ok = tkm_store_terminal_state_parse(state, strlen(state), &t->state) && ok;
	ok = tkm_store_col_text(s, 9, t->firmware_version, sizeof(t->firmware_version), true) && ok;
	ok = tkm_store_col_text(s, 10, t->app_version, sizeof(t->app_version), true) && ok;
	ok = col_u64(s, 11, &t->enrolled_ms) && ok;
	ok = col_u64(s, 12, &t->last_seen_ms) && ok;
	ok = tkm_store_col_text(s, 13, t->notes, sizeof(t->notes), true) && ok;
	ok = col_u64(s, 14, &t->created_ms) && ok;
	return ok ? TKM_OK : malformed(s, "terminal", why, why_len);
}

static tkm_err get_on(sqlite3 *db, int64_t id, tkm_store_terminal *out, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id)};
	tkm_err err;

	err = query_on(db, "SELECT " TERMINAL_COLUMNS " FROM terminal t WHERE t.id = ?1", v, 1,
	               terminal_row, out, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, err, "no terminal %lld", (long long)id);
	}
	return err;
}

tkm_err tkm_store_terminal_get(tkm_store *st, int64_t id, tkm_store_terminal *out, char *why,
                               size_t why_len)
{
	sqlite3 *db = NULL;
	tkm_err err = tkm_store_reader_get(st, &db, why, why_len);

	if (err == TKM_OK) {
		err = get_on(db, id, out, why, why_len);
	}
	tkm_store_reader_put(st, db);
	return err;
}

tkm_err tkm_store_tx_terminal_get(tkm_store_tx *tx, int64_t id, tkm_store_terminal *out, char *why,
                                  size_t why_len)
{
	return get_on(tx->db, id, out, why, why_len);
}

static tkm_err get_hw_on(sqlite3 *db, const char *manufacturer, const char *serial,
                         tkm_store_terminal *out, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(manufacturer), V_TEXT(serial)};
	tkm_err err;

	err = query_on(db,
	               "SELECT " TERMINAL_COLUMNS " FROM terminal t WHERE t.manufacturer = ?1 "
	               "AND t.serial = ?2 AND " LIVE,
	               v, 2, terminal_row, out, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, err, "no live terminal %s/%s", manufacturer,
		                    serial);
	}
	return err;
}

tkm_err tkm_store_terminal_get_hw(tkm_store *st, const char *manufacturer, const char *serial,
                                  tkm_store_terminal *out, char *why, size_t why_len)
{
	sqlite3 *db = NULL;
	tkm_err err = tkm_store_reader_get(st, &db, why, why_len);

	if (err == TKM_OK) {
		err = get_hw_on(db, manufacturer, serial, out, why, why_len);
	}
	tkm_store_reader_put(st, db);
	return err;
}

/* Appends constant SQL fragments to a fixed buffer. */
typedef struct sql_buf {
	char s[768];
	size_t len;
	bool overflow;
} sql_buf;

static void sql_add(sql_buf *b, const char *piece)
{
	size_t n = strlen(piece);

	if (b->overflow || n >= sizeof(b->s) - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->s + b->len, piece, n + 1);
	b->len += n;
}

typedef struct terminal_page {
	tkm_err (*fn)(void *arg, const tkm_store_terminal *t);
	void *arg;
	size_t limit, n;
	bool more;
} terminal_page;

static tkm_err terminal_page_row(sqlite3_stmt *s, void *arg, char *why, size_t why_len)
{
	terminal_page *pg = arg;
	tkm_store_terminal t;
	tkm_err err;

	if (pg->n == pg->limit) {
		pg->more = true;
		return TKM_OK;
	}
	err = terminal_row(s, &t, why, why_len);
	if (err == TKM_OK) {
		err = pg->fn(pg->arg, &t);
	}
	pg->n++;
	return err;
}

tkm_err tkm_store_terminal_page(tkm_store *st, const tkm_store_terminal_filter *f, int64_t after_id,
                                size_t limit, tkm_err (*fn)(void *arg, const tkm_store_terminal *t),
                                void *arg, bool *more, char *why, size_t why_len)
{
	static const tkm_store_terminal_filter none;
	tkm_store_val v[8];
	size_t n = 0;
	sql_buf b = {.len = 0};
	terminal_page pg = {fn, arg, limit, 0, false};
	const char *state = NULL;
	tkm_err err;

	*more = false;
	if (f == NULL) {
		f = &none;
	}
	if (limit == 0 || limit > TKM_STORE_PAGE_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "a page holds 1 to %d terminals", TKM_STORE_PAGE_MAX);
	}
	if (f->state != TKM_STORE_TERMINAL_ANY) {
		state = tkm_store_terminal_state_name(f->state);
		if (state == NULL) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "no such state");
		}
	}
	if (f->seen_since_ms > INT64_MAX || f->not_seen_since_ms > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "last seen out of range");
	}
	/*
	 * Only constant fragments go into the SQL, one per filter present, so
	 * that SQLite can pick the filter's index (each also holds the id, for
	 * the cursor); values are bound in order of appearance.
	 */
	sql_add(&b, "SELECT " TERMINAL_COLUMNS " FROM terminal t WHERE t.id > ?");
	v[n++] = (tkm_store_val)V_INT(after_id);
	if (f->merchant != NULL) {
		sql_add(&b, " AND t.merchant = ?");
		v[n++] = (tkm_store_val)V_TEXT(f->merchant);
	}
	if (f->site != NULL) {
		sql_add(&b, " AND t.site = ?");
		v[n++] = (tkm_store_val)V_TEXT(f->site);
	}
	if (f->group != NULL) {
		sql_add(&b, " AND t.grp = ?");
		v[n++] = (tkm_store_val)V_TEXT(f->group);
	}
	if (state != NULL) {
		sql_add(&b, " AND t.state = ?");
		v[n++] = (tkm_store_val)V_TEXT(state);
	}
	if (f->seen_since_ms != 0) {
		sql_add(&b, " AND t.last_seen >= ?");
		v[n++] = (tkm_store_val)V_INT(f->seen_since_ms);
	}
	if (f->not_seen_since_ms != 0) {
		sql_add(&b, " AND (t.last_seen IS NULL OR t.last_seen < ?)");
		v[n++] = (tkm_store_val)V_INT(f->not_seen_since_ms);
	}
	sql_add(&b, " ORDER BY t.id LIMIT ?");
	v[n++] = (tkm_store_val)V_INT(limit + 1);
	if (b.overflow) {
		return tkm_why_fail(why, why_len, TKM_E_INTERNAL, "terminal query too long");
	}
	err = reader_query(st, b.s, v, n, terminal_page_row, &pg, why, why_len);
	*more = pg.more;
	return err == TKM_E_NOT_FOUND ? TKM_OK : err;
}

/* ---- Changing records ---- */

static tkm_err insert_row(tkm_store_tx *tx, const tkm_store_terminal *t, int64_t *id, char *why,
                          size_t why_len)
{
	const tkm_store_val v[] = {
	    V_TEXT(t->manufacturer), V_TEXT(t->serial),
	    v_opt(t->model),         v_opt(t->merchant),
	    v_opt(t->site),          v_opt(t->group),
	    v_opt(t->purchase_date), v_opt(t->firmware_version),
	    v_opt(t->app_version),   v_opt(t->notes),
	    V_INT(t->created_ms),
	};
	tkm_err err;

	err =
	    tkm_store_tx_exec(tx,
	                      "INSERT INTO terminal (manufacturer, serial, model, merchant, site, "
	                      "grp, purchase_date, state, firmware_version, app_version, notes, "
	                      "created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'registered', ?8, ?9, "
	                      "?10, ?11)",
	                      v, sizeof(v) / sizeof(v[0]), why, why_len);
	if (err == TKM_E_CONFLICT && unique_violation(tx)) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "terminal %s/%s is already registered", t->manufacturer,
		                    t->serial);
	}
	if (err == TKM_OK) {
		*id = sqlite3_last_insert_rowid(tx->db);
	}
	return err;
}

tkm_err tkm_store_tx_terminal_insert(tkm_store_tx *tx, const tkm_store_terminal *t, int64_t *id,
                                     char *why, size_t why_len)
{
	tkm_store_terminal live;
	tkm_err err;

	err = check_terminal(t, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	err = get_hw_on(tx->db, t->manufacturer, t->serial, &live, why, why_len);
	if (err == TKM_OK) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "terminal %s/%s is already registered as %lld (%s)",
		                    t->manufacturer, t->serial, (long long)live.id,
		                    tkm_store_terminal_state_name(live.state));
	}
	if (err != TKM_E_NOT_FOUND) {
		return err;
	}
	return insert_row(tx, t, id, why, why_len);
}

static bool registry_equal(const tkm_store_terminal *a, const tkm_store_terminal *b)
{
	return strcmp(a->model, b->model) == 0 && strcmp(a->merchant, b->merchant) == 0 &&
	       strcmp(a->site, b->site) == 0 && strcmp(a->group, b->group) == 0 &&
	       strcmp(a->purchase_date, b->purchase_date) == 0 && strcmp(a->notes, b->notes) == 0;
}

tkm_err tkm_store_tx_terminal_import(tkm_store_tx *tx, const tkm_store_terminal *t, int64_t *id,
                                     tkm_store_import_result *result, char *why, size_t why_len)
{
	tkm_store_terminal live;
	tkm_err err;

	err = check_terminal(t, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	err = get_hw_on(tx->db, t->manufacturer, t->serial, &live, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		err = insert_row(tx, t, id, why, why_len);
		if (err == TKM_OK) {
			*result = TKM_STORE_IMPORT_INSERTED;
		}
		return err;
	}
	if (err != TKM_OK) {
		return err;
	}
	if (registry_equal(t, &live)) {
		*id = live.id;
		*result = TKM_STORE_IMPORT_UNCHANGED;
		return TKM_OK;
	}
	if (live.state != TKM_STORE_TERMINAL_REGISTERED) {
		return tkm_why_fail(
		    why, why_len, TKM_E_CONFLICT,
		    "terminal %s/%s (%lld) is %s: an import changes only registered "
		    "terminals",
		    t->manufacturer, t->serial, (long long)live.id,
		    tkm_store_terminal_state_name(live.state));
	}
	{
		const tkm_store_val v[] = {V_INT(live.id), v_opt(t->model), v_opt(t->merchant),
		                           v_opt(t->site), v_opt(t->group), v_opt(t->purchase_date),
		                           v_opt(t->notes)};

		err = tkm_store_tx_exec(tx,
		                        "UPDATE terminal SET model = ?2, merchant = ?3, site = ?4, "
		                        "grp = ?5, purchase_date = ?6, notes = ?7 "
		                        "WHERE id = ?1 AND state = 'registered'",
		                        v, sizeof(v) / sizeof(v[0]), why, why_len);
	}
	if (err == TKM_OK && sqlite3_changes(tx->db) != 1) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFLICT, "terminal %lld changed meanwhile",
		                   (long long)live.id);
	}
	if (err == TKM_OK) {
		*id = live.id;
		*result = TKM_STORE_IMPORT_UPDATED;
	}
	return err;
}

/* After an UPDATE ... WHERE id = ? AND state = from changed nothing: say why. */
static tkm_err state_mismatch(tkm_store_tx *tx, int64_t id, const char *want, char *why,
                              size_t why_len)
{
	tkm_store_terminal t;
	tkm_err err;

	err = get_on(tx->db, id, &t, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	return tkm_why_fail(why, why_len, TKM_E_CONFLICT, "terminal %lld is %s, not %s",
	                    (long long)id, tkm_store_terminal_state_name(t.state), want);
}

tkm_err tkm_store_tx_terminal_set_state(tkm_store_tx *tx, int64_t id, tkm_store_terminal_state from,
                                        tkm_store_terminal_state to, char *why, size_t why_len)
{
	const char *f = tkm_store_terminal_state_name(from);
	const char *t = tkm_store_terminal_state_name(to);
	tkm_err err;

	if (f == NULL || t == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "no such state");
	}
	{
		const tkm_store_val v[] = {V_INT(id), V_TEXT(f), V_TEXT(t)};

		err = tkm_store_tx_exec(
		    tx, "UPDATE terminal SET state = ?3 WHERE id = ?1 AND state = ?2", v, 3, why,
		    why_len);
	}
	if (err == TKM_E_CONFLICT) {
		/* A trigger refused: keep SQLite's sentence, it names the rule. */
		return tkm_why_fail(why, why_len, TKM_E_CONFLICT, "terminal %lld: %s -> %s: %s",
		                    (long long)id, f, t, sqlite3_errmsg(tx->db));
	}
	if (err == TKM_OK && sqlite3_changes(tx->db) == 0) {
		return state_mismatch(tx, id, f, why, why_len);
	}
	return err;
}

tkm_err tkm_store_tx_terminal_set_versions(tkm_store_tx *tx, int64_t id,
                                           const char *firmware_version, const char *app_version,
                                           char *why, size_t why_len)
{
	const char *fw = firmware_version != NULL ? firmware_version : "";
	const char *app = app_version != NULL ? app_version : "";
	const tkm_store_val v[] = {V_INT(id), v_opt(fw), v_opt(app)};
	tkm_err err;

	err =
	    check_field("firmware version", fw, TKM_STORE_TERMINAL_FIELD_MAX, false, why, why_len);
	if (err == TKM_OK) {
		err = check_field("application version", app, TKM_STORE_TERMINAL_FIELD_MAX, false,
		                  why, why_len);
	}
	if (err == TKM_OK) {
		err =
		    tkm_store_tx_exec(tx,
		                      "UPDATE terminal SET firmware_version = ?2, app_version = ?3 "
		                      "WHERE id = ?1",
		                      v, 3, why, why_len);
	}
	if (err == TKM_OK && sqlite3_changes(tx->db) == 0) {
		err =
		    tkm_why_fail(why, why_len, TKM_E_NOT_FOUND, "no terminal %lld", (long long)id);
	}
	return err;
}

/* ---- Enrollment ---- */

tkm_err tkm_store_tx_terminal_set_enrolled(tkm_store_tx *tx, int64_t id, const char *principal,
                                           const uint8_t sign_pk[static TKM_STORE_TERMINAL_PK_LEN],
                                           const uint8_t box_pk[static TKM_STORE_TERMINAL_PK_LEN],
                                           uint64_t now_ms, char *why, size_t why_len)
{
	const tkm_store_val d[] = {V_INT(id), V_TEXT(principal),
	                           V_BLOB(sign_pk, TKM_STORE_TERMINAL_PK_LEN),
	                           V_BLOB(box_pk, TKM_STORE_TERMINAL_PK_LEN), V_INT(now_ms)};
	const tkm_store_val u[] = {V_INT(id), V_INT(now_ms)};
	tkm_store_terminal t;
	tkm_err err;

	err = check_field("device principal", principal, TKM_STORE_TERMINAL_PRINCIPAL_MAX, true,
	                  why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (now_ms > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "time out of range");
	}
	err = get_on(tx->db, id, &t, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (t.state != TKM_STORE_TERMINAL_REGISTERED) {
		return tkm_why_fail(why, why_len, TKM_E_CONFLICT,
		                    "terminal %lld is %s: only a registered terminal enrolls; "
		                    "re-enrollment is revoke and a new record",
		                    (long long)id, tkm_store_terminal_state_name(t.state));
	}
	/* Keys first: the schema lets a terminal be active only with keys bound. */
	err = tkm_store_tx_exec(tx,
	                        "INSERT INTO terminal_device (terminal_id, principal, sign_pk, "
	                        "box_pk, bound) VALUES (?1, ?2, ?3, ?4, ?5)",
	                        d, 5, why, why_len);
	if (err == TKM_E_CONFLICT && unique_violation(tx)) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "device principal '%s' is bound to another terminal",
		                    principal);
	}
	if (err != TKM_OK) {
		return err;
	}
	err = tkm_store_tx_exec(tx,
	                        "UPDATE terminal SET state = 'active', enrolled_at = ?2 "
	                        "WHERE id = ?1 AND state = 'registered'",
	                        u, 2, why, why_len);
	if (err == TKM_OK && sqlite3_changes(tx->db) != 1) {
		err = state_mismatch(tx, id, "registered", why, why_len);
	}
	return err;
}

#define KEYS_COLUMNS "d.terminal_id, d.principal, d.sign_pk, d.box_pk, d.bound"

/* The keys' columns starting at column i. */
static bool keys_cols(sqlite3_stmt *s, int i, tkm_store_terminal_keys *k)
{
	bool ok;

	memset(k, 0, sizeof(*k));
	k->terminal_id = sqlite3_column_int64(s, i);
	ok = tkm_store_col_text(s, i + 1, k->principal, sizeof(k->principal), true) &&
	     k->principal[0] != '\0';
	ok = col_fixed(s, i + 2, k->sign_pk, sizeof(k->sign_pk)) && ok;
	ok = col_fixed(s, i + 3, k->box_pk, sizeof(k->box_pk)) && ok;
	ok = col_u64(s, i + 4, &k->bound_ms) && ok;
	return ok;
}

static tkm_err keys_row(sqlite3_stmt *s, void *arg, char *why, size_t why_len)
{
	return keys_cols(s, 0, arg) ? TKM_OK : malformed(s, "terminal_device", why, why_len);
}

tkm_err tkm_store_terminal_keys_get(tkm_store *st, int64_t id, tkm_store_terminal_keys *out,
                                    char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(id)};
	tkm_err err;

	err = reader_query(st,
	                   "SELECT " KEYS_COLUMNS " FROM terminal_device d WHERE "
	                   "d.terminal_id = ?1",
	                   v, 1, keys_row, out, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, err, "terminal %lld has no keys bound",
		                    (long long)id);
	}
	return err;
}

typedef struct both {
	tkm_store_terminal *t;
	tkm_store_terminal_keys *k;
} both;

static tkm_err both_row(sqlite3_stmt *s, void *arg, char *why, size_t why_len)
{
	both *b = arg;
	tkm_err err;

	err = terminal_row(s, b->t, why, why_len);
	if (err == TKM_OK && !keys_cols(s, TERMINAL_NCOLUMNS, b->k)) {
		err = malformed(s, "terminal_device", why, why_len);
	}
	return err;
}

tkm_err tkm_store_terminal_by_principal(tkm_store *st, const char *principal, tkm_store_terminal *t,
                                        tkm_store_terminal_keys *keys, char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_TEXT(principal)};
	both b = {t, keys};
	tkm_err err;

	err = reader_query(st,
	                   "SELECT " TERMINAL_COLUMNS ", " KEYS_COLUMNS " FROM terminal_device d "
	                   "JOIN terminal t ON t.id = d.terminal_id WHERE d.principal = ?1",
	                   v, 1, both_row, &b, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		return tkm_why_fail(why, why_len, err, "no terminal is bound to '%s'", principal);
	}
	return err;
}

/* ---- Enrollment codes ---- */

tkm_err tkm_store_tx_enroll_code_insert(tkm_store_tx *tx,
                                        const uint8_t hash[static TKM_STORE_ENROLL_HASH_LEN],
                                        int64_t terminal_id, uint64_t created_ms,
                                        uint64_t expires_ms, char *why, size_t why_len)
{
	const tkm_store_val old[] = {V_INT(terminal_id), V_INT(created_ms)};
	const tkm_store_val v[] = {V_BLOB(hash, TKM_STORE_ENROLL_HASH_LEN), V_INT(terminal_id),
	                           V_INT(created_ms), V_INT(expires_ms)};
	tkm_store_terminal t;
	tkm_err err;

	if (expires_ms <= created_ms || expires_ms > INT64_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "an enrollment code must expire after it is made");
	}
	err = get_on(tx->db, terminal_id, &t, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	if (t.state != TKM_STORE_TERMINAL_REGISTERED) {
		return tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                    "terminal %lld is %s: enrollment codes are for registered "
		                    "terminals",
		                    (long long)terminal_id, tkm_store_terminal_state_name(t.state));
	}
	/* One outstanding code per terminal: the older ones expire now. */
	err = tkm_store_tx_exec(tx,
	                        "UPDATE enrollment_code SET expires = ?2 WHERE terminal_id = ?1 "
	                        "AND used IS NULL AND expires > ?2",
	                        old, 2, why, why_len);
	if (err != TKM_OK) {
		return err;
	}
	err = tkm_store_tx_exec(tx,
	                        "INSERT INTO enrollment_code (code_hash, terminal_id, created, "
	                        "expires) VALUES (?1, ?2, ?3, ?4)",
	                        v, 4, why, why_len);
	if (err == TKM_E_CONFLICT && unique_violation(tx)) {
		return tkm_why_fail(why, why_len, TKM_E_ALREADY_EXISTS,
		                    "this enrollment code is already stored");
	}
	return err;
}

typedef struct code_row_out {
	int64_t terminal_id;
	uint64_t expires_ms;
	bool used;
} code_row_out;

static tkm_err code_row(sqlite3_stmt *s, void *arg, char *why, size_t why_len)
{
	code_row_out *c = arg;

	c->terminal_id = sqlite3_column_int64(s, 0);
	c->used = sqlite3_column_type(s, 2) != SQLITE_NULL;
	if (!col_u64(s, 1, &c->expires_ms)) {
		return tkm_why_fail(why, why_len, TKM_E_IO,
		                    "database %s: a malformed enrollment code",
		                    db_path(sqlite3_db_handle(s)));
	}
	return TKM_OK;
}

tkm_err tkm_store_tx_enroll_code_consume(tkm_store_tx *tx,
                                         const uint8_t hash[static TKM_STORE_ENROLL_HASH_LEN],
                                         uint64_t now_ms, int64_t *terminal_id,
                                         tkm_store_code_fault *fault, char *why, size_t why_len)
{
	const tkm_store_val k[] = {V_BLOB(hash, TKM_STORE_ENROLL_HASH_LEN)};
	const tkm_store_val u[] = {V_BLOB(hash, TKM_STORE_ENROLL_HASH_LEN), V_INT(now_ms)};
	tkm_store_code_fault fl = TKM_STORE_CODE_OK;
	code_row_out c = {0, 0, false};
	tkm_err err;

	*terminal_id = 0;
	if (now_ms > INT64_MAX) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "time out of range");
		goto out;
	}
	err = query_on(tx->db,
	               "SELECT terminal_id, expires, used FROM enrollment_code WHERE "
	               "code_hash = ?1",
	               k, 1, code_row, &c, why, why_len);
	if (err == TKM_E_NOT_FOUND) {
		fl = TKM_STORE_CODE_UNKNOWN;
		err = tkm_why_fail(why, why_len, err, "unknown enrollment code");
		goto out;
	}
	if (err != TKM_OK) {
		goto out;
	}
	*terminal_id = c.terminal_id;
	if (c.used) {
		fl = TKM_STORE_CODE_USED;
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "the enrollment code was used already");
		goto out;
	}
	if (now_ms >= c.expires_ms) {
		fl = TKM_STORE_CODE_EXPIRED;
		err = tkm_why_fail(why, why_len, TKM_E_FAILED_PRECONDITION,
		                   "the enrollment code has expired");
		goto out;
	}
	err = tkm_store_tx_exec(tx,
	                        "UPDATE enrollment_code SET used = ?2 WHERE code_hash = ?1 AND "
	                        "used IS NULL",
	                        u, 2, why, why_len);
	if (err == TKM_OK && sqlite3_changes(tx->db) != 1) {
		err = tkm_why_fail(why, why_len, TKM_E_CONFLICT,
		                   "the enrollment code changed meanwhile");
	}
out:
	if (fault != NULL) {
		*fault = fl;
	}
	return err;
}

/* ---- Last seen ---- */

tkm_err tkm_store_tx_terminal_touch_many(tkm_store_tx *tx, const tkm_store_terminal_seen *seen,
                                         size_t n, size_t *updated, char *why, size_t why_len)
{
	sqlite3_stmt *s = NULL;
	size_t moved = 0;
	tkm_err err = TKM_OK;

	if (updated != NULL) {
		*updated = 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (seen[i].ts_ms > INT64_MAX) {
			return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
			                    "last seen of terminal %lld out of range",
			                    (long long)seen[i].id);
		}
	}
	if (n == 0) {
		return TKM_OK;
	}
	if (sqlite3_prepare_v2(tx->db,
	                       "UPDATE terminal SET last_seen = ?2 WHERE id = ?1 AND "
	                       "(last_seen IS NULL OR last_seen < ?2)",
	                       -1, &s, NULL) != SQLITE_OK) {
		err = tkm_store_db_fail(tx->db, db_path(tx->db), "cannot update last seen", why,
		                        why_len);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (sqlite3_bind_int64(s, 1, seen[i].id) != SQLITE_OK ||
		    sqlite3_bind_int64(s, 2, (sqlite3_int64)seen[i].ts_ms) != SQLITE_OK ||
		    sqlite3_step(s) != SQLITE_DONE) {
			err = tkm_store_db_fail(tx->db, db_path(tx->db), "cannot update last seen",
			                        why, why_len);
			goto out;
		}
		moved += (size_t)sqlite3_changes(tx->db);
		sqlite3_reset(s);
	}
	if (updated != NULL) {
		*updated = moved;
	}
out:
	sqlite3_finalize(s);
	return err;
}

/* ---- Histories ---- */

/* TKM_E_NOT_FOUND (with a sentence) when there is no record id. */
static tkm_err terminal_exists(tkm_store_tx *tx, int64_t id, char *why, size_t why_len)
{
	tkm_store_terminal t;

	return get_on(tx->db, id, &t, why, why_len);
}

tkm_err tkm_store_tx_maintenance_add(tkm_store_tx *tx, int64_t terminal_id,
                                     const tkm_store_maintenance *m, uint64_t now_ms, int64_t *seq,
                                     char *why, size_t why_len)
{
	const tkm_store_val v[] = {V_INT(terminal_id),    V_TEXT(m->at),         V_TEXT(m->kind),
	                           v_opt(m->description), V_TEXT(m->technician), V_INT(now_ms)};
	tkm_err err;

	if (!date_ok(m->at)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "maintenance date must be a date as YYYY-MM-DD");
	}
	err = check_field("maintenance kind", m->kind, TKM_STORE_TERMINAL_FIELD_MAX, true, why,
	                  why_len);
	if (err == TKM_OK) {
		err = check_field("description", m->description, TKM_STORE_TERMINAL_NOTES_MAX,
		                  false, why, why_len);
	}
	if (err == TKM_OK) {
		err = check_field("technician", m->technician, TKM_STORE_TERMINAL_FIELD_MAX, true,
		                  why, why_len);
	}
	if (err == TKM_OK && now_ms > INT64_MAX) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "time out of range");
	}
	if (err == TKM_OK) {
		err = terminal_exists(tx, terminal_id, why, why_len);
	}
	if (err == TKM_OK) {
		err =
		    tkm_store_tx_exec(tx,
		                      "INSERT INTO terminal_maintenance (terminal_id, at, kind, "
		                      "description, technician, recorded) VALUES (?1, ?2, ?3, ?4, "
		                      "?5, ?6)",
		                      v, 6, why, why_len);
	}
	if (err == TKM_OK && seq != NULL) {
		*seq = sqlite3_last_insert_rowid(tx->db);
	}
	return err;
}

tkm_err tkm_store_tx_custody_add(tkm_store_tx *tx, int64_t terminal_id, const tkm_store_custody *c,
                                 uint64_t now_ms, int64_t *seq, char *why, size_t why_len)
{
	const char *action = tkm_store_custody_action_name(c->action);
	tkm_err err;

	if (!date_ok(c->at)) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "custody date must be a date as YYYY-MM-DD");
	}
	if (action == NULL) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG,
		                    "custody action must be received or returned");
	}
	err = check_field("person", c->person, TKM_STORE_TERMINAL_FIELD_MAX, true, why, why_len);
	if (err == TKM_OK) {
		err = check_field("counterparty", c->counterparty, TKM_STORE_TERMINAL_FIELD_MAX,
		                  false, why, why_len);
	}
	if (err == TKM_OK && now_ms > INT64_MAX) {
		err = tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "time out of range");
	}
	if (err == TKM_OK) {
		err = terminal_exists(tx, terminal_id, why, why_len);
	}
	if (err == TKM_OK) {
		const tkm_store_val v[] = {V_INT(terminal_id),     V_TEXT(c->at),
		                           V_TEXT(action),         V_TEXT(c->person),
		                           v_opt(c->counterparty), V_INT(now_ms)};

		err =
		    tkm_store_tx_exec(tx,
		                      "INSERT INTO terminal_custody (terminal_id, at, action, "
		                      "person, counterparty, recorded) VALUES (?1, ?2, ?3, ?4, ?5, "
		                      "?6)",
		                      v, 6, why, why_len);
	}
	if (err == TKM_OK && seq != NULL) {
		*seq = sqlite3_last_insert_rowid(tx->db);
	}
	return err;
}

typedef struct hist_page {
	tkm_err (*maint)(void *arg, const tkm_store_maintenance *m);
	tkm_err (*custody)(void *arg, const tkm_store_custody *c);
	void *arg;
	size_t limit, n;
	bool more;
} hist_page;

static tkm_err maintenance_row(sqlite3_stmt *s, void *arg, char *why, size_t why_len)
{
	hist_page *pg = arg;
	tkm_store_maintenance m;
	bool ok;

	if (pg->n == pg->limit) {
		pg->more = true;
		return TKM_OK;
	}
	memset(&m, 0, sizeof(m));
	m.seq = sqlite3_column_int64(s, 0);
	m.terminal_id = sqlite3_column_int64(s, 1);
	ok = tkm_store_col_text(s, 2, m.at, sizeof(m.at), true);
	ok = tkm_store_col_text(s, 3, m.kind, sizeof(m.kind), true) && ok;
	ok = tkm_store_col_text(s, 4, m.description, sizeof(m.description), true) && ok;
	ok = tkm_store_col_text(s, 5, m.technician, sizeof(m.technician), true) && ok;
	ok = col_u64(s, 6, &m.recorded_ms) && ok;
	if (!ok) {
		return malformed(s, "terminal_maintenance", why, why_len);
	}
	pg->n++;
	return pg->maint(pg->arg, &m);
}

static tkm_err custody_row(sqlite3_stmt *s, void *arg, char *why, size_t why_len)
{
	hist_page *pg = arg;
	tkm_store_custody c;
	char action[16];
	bool ok;

	if (pg->n == pg->limit) {
		pg->more = true;
		return TKM_OK;
	}
	memset(&c, 0, sizeof(c));
	c.seq = sqlite3_column_int64(s, 0);
	c.terminal_id = sqlite3_column_int64(s, 1);
	ok = tkm_store_col_text(s, 2, c.at, sizeof(c.at), true);
	ok = tkm_store_col_text(s, 3, action, sizeof(action), true) && ok;
	ok = tkm_store_custody_action_parse(action, strlen(action), &c.action) && ok;
	ok = tkm_store_col_text(s, 4, c.person, sizeof(c.person), true) && ok;
	ok = tkm_store_col_text(s, 5, c.counterparty, sizeof(c.counterparty), true) && ok;
	ok = col_u64(s, 6, &c.recorded_ms) && ok;
	if (!ok) {
		return malformed(s, "terminal_custody", why, why_len);
	}
	pg->n++;
	return pg->custody(pg->arg, &c);
}

static tkm_err hist_query(tkm_store *st, const char *sql, row_fn row, hist_page *pg,
                          int64_t terminal_id, int64_t after_seq, bool *more, char *why,
                          size_t why_len)
{
	const tkm_store_val v[] = {V_INT(terminal_id), V_INT(after_seq), V_INT(pg->limit + 1)};
	tkm_err err;

	*more = false;
	if (pg->limit == 0 || pg->limit > TKM_STORE_PAGE_MAX) {
		return tkm_why_fail(why, why_len, TKM_E_INVALID_ARG, "a page holds 1 to %d entries",
		                    TKM_STORE_PAGE_MAX);
	}
	err = reader_query(st, sql, v, 3, row, pg, why, why_len);
	*more = pg->more;
	return err == TKM_E_NOT_FOUND ? TKM_OK : err;
}

tkm_err tkm_store_maintenance_page(tkm_store *st, int64_t terminal_id, int64_t after_seq,
                                   size_t limit,
                                   tkm_err (*fn)(void *arg, const tkm_store_maintenance *m),
                                   void *arg, bool *more, char *why, size_t why_len)
{
	hist_page pg = {fn, NULL, arg, limit, 0, false};

	return hist_query(st,
	                  "SELECT seq, terminal_id, at, kind, description, technician, recorded "
	                  "FROM terminal_maintenance WHERE terminal_id = ?1 AND seq > ?2 "
	                  "ORDER BY seq LIMIT ?3",
	                  maintenance_row, &pg, terminal_id, after_seq, more, why, why_len);
}

tkm_err tkm_store_custody_page(tkm_store *st, int64_t terminal_id, int64_t after_seq, size_t limit,
                               tkm_err (*fn)(void *arg, const tkm_store_custody *c), void *arg,
                               bool *more, char *why, size_t why_len)
{
	hist_page pg = {NULL, fn, arg, limit, 0, false};

	return hist_query(st,
	                  "SELECT seq, terminal_id, at, action, person, counterparty, recorded "
	                  "FROM terminal_custody WHERE terminal_id = ?1 AND seq > ?2 "
	                  "ORDER BY seq LIMIT ?3",
	                  custody_row, &pg, terminal_id, after_seq, more, why, why_len);
}
