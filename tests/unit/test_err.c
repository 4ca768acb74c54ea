/* The one error table (QKDN_ERRORS in qkdn_err.h): every code has a name
 * and a text, names are unique, and the table in docs/cli.md says exactly
 * the same as the code, row by row. */
#include "qkdn_err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N_CODES (-QKDN_E_LAST_ - 1)

static void
every_code_named(void **state)
{
	(void)state;
	assert_string_equal(qkdn_strerror(0), "success");
	assert_string_equal(qkdn_errname(0), "ok");
	for (int c = 1; c <= N_CODES; c++) {
		assert_string_not_equal(qkdn_strerror(-c), "unknown error");
		assert_string_not_equal(qkdn_errname(-c), "unknown_error");
		for (int d = 1; d < c; d++)
			assert_string_not_equal(qkdn_errname(-c),
			                        qkdn_errname(-d));
	}
	assert_string_equal(qkdn_strerror(QKDN_E_LAST_), "unknown error");
	assert_string_equal(qkdn_errname(QKDN_E_LAST_), "unknown_error");
	assert_string_equal(qkdn_strerror(1), "unknown error");
	/* a few codes the wire and scripts rely on never change */
	assert_int_equal(QKDN_E_INSUFFICIENT_KEY, -2);
	assert_string_equal(qkdn_errname(QKDN_E_UNKNOWN_KEY_ID),
	                    "unknown_key_id");
	assert_int_equal(QKDN_E_ALREADY_SUPPLIED, -19);
	assert_string_equal(qkdn_errname(QKDN_E_ALREADY_SUPPLIED),
	                    "already_supplied");
}

/* docs/cli.md, found from this file's path (tests/unit/ in the tree) */
static FILE *
open_cli_doc(void)
{
	char path[4096];
	const char *self = __FILE__, *cut = strstr(self, "tests/unit/");
	assert_non_null(cut);
	snprintf(path, sizeof(path), "%.*sdocs/cli.md", (int)(cut - self),
	         self);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	return f;
}

static void
docs_table_matches(void **state)
{
	(void)state;
	FILE *f = open_cli_doc();
	char line[512];
	int seen[N_CODES + 1] = {0}, rows = 0;
	bool in_table = false;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "### Errors", 10) == 0) {
			in_table = true;
			continue;
		}
		if (in_table && strncmp(line, "#", 1) == 0)
			break;
		int code, n = 0;
		char name[64], text[128];
		if (!in_table ||
		    sscanf(line, "| %d | `%63[^`]` | %127[^|]|%n", &code, name,
		           text, &n) != 3 ||
		    n == 0)
			continue;
		size_t len = strlen(text);
		while (len > 0 && text[len - 1] == ' ')
			text[--len] = '\0';
		if (code < 1 || code > N_CODES)
			fail_msg("docs/cli.md lists code %d, which does not "
			         "exist",
			         code);
		if (strcmp(name, qkdn_errname(-code)) != 0 ||
		    strcmp(text, qkdn_strerror(-code)) != 0)
			fail_msg("docs/cli.md: code %d is `%s` (%s), the code "
			         "says `%s` (%s)",
			         code, name, text, qkdn_errname(-code),
			         qkdn_strerror(-code));
		seen[code]++;
		rows++;
	}
	fclose(f);
	for (int c = 1; c <= N_CODES; c++)
		if (seen[c] != 1)
			fail_msg("docs/cli.md lists code %d (%s) %d times", c,
			         qkdn_errname(-c), seen[c]);
	assert_int_equal(rows, N_CODES);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_code_named),
	    cmocka_unit_test(docs_table_matches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
