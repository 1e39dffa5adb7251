/*
 * err.c - text, names, JSON-RPC codes and HTTP statuses generated from MG_ERRNO_MAP (see err.h).
 */
#include "err.h"

const char *mg_strerror(int err)
{
    switch (err) {
    case MG_OK:
        return "success";
#define MG__ERR_TEXT(name, value, code, status, text)                                                        \
    case MG_##name:                                                                                          \
        return text;
        MG_ERRNO_MAP(MG__ERR_TEXT)
#undef MG__ERR_TEXT
    }
    return "unknown error";
}

const char *mg_err_name(int err)
{
    switch (err) {
    case MG_OK:
        return "MG_OK";
#define MG__ERR_NAME(name, value, code, status, text)                                                        \
    case MG_##name:                                                                                          \
        return "MG_" #name;
        MG_ERRNO_MAP(MG__ERR_NAME)
#undef MG__ERR_NAME
    }
    return "MG_UNKNOWN";
}

int mg_err_jsonrpc_code(int err)
{
    switch (err) {
#define MG__ERR_CODE(name, value, code, status, text)                                                        \
    case MG_##name:                                                                                          \
        return code;
        MG_ERRNO_MAP(MG__ERR_CODE)
#undef MG__ERR_CODE
    }
    return mg_err_jsonrpc_code(MG_EINTERNAL);
}

int mg_err_http_status(int err)
{
    switch (err) {
#define MG__ERR_STATUS(name, value, code, status, text)                                                      \
    case MG_##name:                                                                                          \
        return status;
        MG_ERRNO_MAP(MG__ERR_STATUS)
#undef MG__ERR_STATUS
    }
    return 500;
}
