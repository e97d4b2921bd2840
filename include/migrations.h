/* migrations.h - the SQL migrations in sql/, embedded at build time */
#ifndef CORDON_MIGRATIONS_H
#define CORDON_MIGRATIONS_H

struct migration {
	int version;
	const char *name;
	const char *sql;
};

/* Ascending by version, terminated by { 0, NULL, NULL }. */
extern const struct migration migrations[];

#endif
