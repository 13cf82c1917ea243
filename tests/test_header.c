/* SPDX-License-Identifier: MIT
 *
 * Compile-only check: the public header stands alone under -std=c11 -pedantic.
 */
#include "promptshap.h"

int promptshap_header_check(void);

int promptshap_header_check(void) {
    return PROMPTSHAP_VERSION_MAJOR + (int)sizeof(promptshap_span);
}
