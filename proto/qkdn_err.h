/* qkdn error codes: one namespace shared by libqkdn, KM, controller, CLI and
 * the provider. 0 is success; errors are negative in C and travel on the wire
 * as their positive value in an ERROR message. The numbers are stable: never
 * renumber, only append. */
#ifndef QKDN_ERR_H
#define QKDN_ERR_H

enum qkdn_err {
	QKDN_OK = 0,
	QKDN_E_BAD_REQUEST = -1,      /* malformed or invalid message */
	QKDN_E_INSUFFICIENT_KEY = -2, /* not enough key material in a pool */
	QKDN_E_UNKNOWN_KEY_ID = -3,   /* no such key at this KM */
	QKDN_E_NOT_AUTHORISED = -4,   /* caller may not do this */
	QKDN_E_NO_ROUTE = -5,         /* destination not reachable */
	QKDN_E_TIMEOUT = -6,          /* deadline passed */
	QKDN_E_UNREACHABLE = -7,      /* peer did not answer / not connected */
	QKDN_E_INTERNAL = -8,         /* bug or unexpected failure */
	QKDN_E_STORE = -9,            /* key store failure */
	QKDN_E_NOMEM = -10,           /* out of memory */
	QKDN_E_VERSION = -11,         /* unsupported protocol version */
	QKDN_E_UNKNOWN_TYPE = -12,    /* unknown message type */
	QKDN_E_TRUNCATED = -13,       /* input ends early */
	QKDN_E_WRONG_TYPE = -14,      /* field of the wrong type */
	QKDN_E_RANGE = -15,           /* value out of range */
	QKDN_E_TOO_LARGE = -16,       /* string, key or array too large */
	QKDN_E_MISSING_FIELD = -17,   /* required field absent */
	QKDN_E_CONFIG = -18,          /* bad configuration */
	QKDN_E_ALREADY_SUPPLIED =
	    -19,                    /* key was already supplied to this end */
	QKDN_E_AUTH_FAILED = -20,   /* MAC check failed */
	QKDN_E_REPLAY = -21,        /* reuse of consumed key material */
	QKDN_E_SHUTDOWN = -22,      /* service is stopping */
	QKDN_E_BLOCK_MISSING = -23, /* peer lacks a link key block */
	QKDN_E_UNSUPPORTED = -24,   /* valid request this KM does not serve */
	QKDN_E_IO = -25,            /* operating system error */
	QKDN_E_LAST_ = -26
};

/* Human-readable text of a qkdn error code (never NULL). */
const char *qkdn_strerror(int err);

/* Mapping of dependency errors, each in exactly one place. */
int qkdn_err_from_nng(int nng_rv);
int qkdn_err_from_mdb(int mdb_rv);

#endif
