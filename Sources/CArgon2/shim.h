#ifndef TOKEND_CARGON2_SHIM_H
#define TOKEND_CARGON2_SHIM_H
#include <argon2.h>
#endif
