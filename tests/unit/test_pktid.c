/* test_pktid.c - the packet identifier table (pktid.c) on a real file:
 * a slot matches only its content, survives a reopen (a SIGKILL keeps the
 * page cache), is trimmed past the spool's end, cleared for a new
 * session, and a table of another spool starts empty. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "pktid.h"

#define ID1 "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"

static char path[] = "/tmp/cordon-pktid-XXXXXX";

static struct pktid *
open_table(const char *spool_id)
{
	struct pktid *t;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(pktid_open(fd, spool_id, &t), 0);
	return t;
}

static void
slots(void **state)
{
	uint64_t off = pktid_content(11, 22), on = pktid_content(11, 23);
	struct pktid *t;

	(void)state;
	t = open_table(ID1);
	assert_true(off != 0 && on != 0 && off != on);
	assert_false(pktid_match(t, 7, off));
	pktid_set(t, 7, off, 1000);
	pktid_set(t, 8, on, 2000);
	pktid_set(t, 65535, on, 3000);
	assert_true(pktid_match(t, 7, off));
	assert_false(pktid_match(t, 7, on));  /* same id, other content: new */
	assert_false(pktid_match(t, 9, off)); /* other id */
	assert_false(pktid_match(t, 0, off)); /* QoS 0 has none */
	/* the broker reuses an id once it has our PUBACK */
	pktid_set(t, 7, on, 4000);
	assert_false(pktid_match(t, 7, off));
	assert_true(pktid_match(t, 7, on));
	/* identifiers 4,096 apart share a slot, which names its own */
	pktid_set(t, 9, off, 4100);
	pktid_set(t, 9 + 4096, on, 4200);
	assert_false(pktid_match(t, 9, off));
	assert_true(pktid_match(t, 9 + 4096, on));
	assert_false(pktid_match(t, 9, on));
	assert_int_equal(pktid_sync(t), 0);
	pktid_close(t);

	t = open_table(ID1); /* kept in the file */
	assert_true(pktid_match(t, 7, on));
	assert_true(pktid_match(t, 65535, on));
	pktid_trim(t, 2500); /* a torn tail cut what ended after 2500 */
	assert_true(pktid_match(t, 8, on));
	assert_false(pktid_match(t, 7, on));
	assert_false(pktid_match(t, 65535, on));
	pktid_clear(t); /* a new session */
	assert_false(pktid_match(t, 8, on));
	pktid_set(t, 8, on, 10);
	pktid_close(t);

	t = open_table(ID2); /* another spool's table */
	assert_false(pktid_match(t, 8, on));
	pktid_close(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(slots),
	};
	int fd = mkstemp(path), rc;

	if (fd < 0)
		return 1;
	close(fd);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(path);
	return rc;
}
