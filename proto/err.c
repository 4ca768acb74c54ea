#include "qkdn_err.h"

#include <stddef.h>

static const struct {
	const char *name, *text;
} errors[] = {[0] = {"ok", "success"},
#define ERR_ENTRY(num, sym, name, text) [num] = {name, text},
              QKDN_ERRORS(ERR_ENTRY)
#undef ERR_ENTRY
};
_Static_assert(sizeof(errors) / sizeof(errors[0]) == -QKDN_E_LAST_,
               "QKDN_E_LAST_ must follow the last code of QKDN_ERRORS");

const char *
qkdn_strerror(int err)
{
	if (err > 0 || err <= QKDN_E_LAST_ || errors[-err].text == NULL)
		return "unknown error";
	return errors[-err].text;
}

const char *
qkdn_errname(int err)
{
	if (err > 0 || err <= QKDN_E_LAST_ || errors[-err].name == NULL)
		return "unknown_error";
	return errors[-err].name;
}
