#include "qkdn_err.h"

#include <errno.h>
#include <lmdb.h>
#include <nng/nng.h>

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

int
qkdn_err_from_nng(int rv)
{
	switch (rv) {
	case 0:
		return QKDN_OK;
	case NNG_ETIMEDOUT:
		return QKDN_E_TIMEOUT;
	case NNG_ENOMEM:
		return QKDN_E_NOMEM;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_ECLOSED:
	case NNG_EADDRINVAL:
	case NNG_ENOENT:
		return QKDN_E_UNREACHABLE;
	case NNG_ECANCELED:
		return QKDN_E_SHUTDOWN;
	default:
		return QKDN_E_IO;
	}
}

int
qkdn_err_from_mdb(int rv)
{
	switch (rv) {
	case MDB_SUCCESS:
		return QKDN_OK;
	case MDB_NOTFOUND:
		return QKDN_E_UNKNOWN_KEY_ID;
	case ENOMEM:
		return QKDN_E_NOMEM;
	default:
		return QKDN_E_STORE;
	}
}
