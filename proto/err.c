#include "qkdn_err.h"

#include <errno.h>
#include <lmdb.h>
#include <nng/nng.h>

static const char *const messages[] = {
    [0] = "success",
    [1] = "bad request",
    [2] = "insufficient key material",
    [3] = "unknown key ID",
    [4] = "not authorised",
    [5] = "no route to destination",
    [6] = "timeout",
    [7] = "peer unreachable",
    [8] = "internal error",
    [9] = "key store error",
    [10] = "out of memory",
    [11] = "unsupported protocol version",
    [12] = "unknown message type",
    [13] = "truncated message",
    [14] = "field of wrong type",
    [15] = "value out of range",
    [16] = "value too large",
    [17] = "required field missing",
    [18] = "bad configuration",
    [19] = "key already supplied",
    [20] = "authentication failed",
    [21] = "replayed key material",
    [22] = "shutting down",
    [23] = "link key block missing at peer",
    [24] = "unsupported request",
    [25] = "I/O error",
};

const char *
qkdn_strerror(int err)
{
	if (err > 0 || err <= QKDN_E_LAST_)
		return "unknown error";
	return messages[-err];
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
