/* The frozen layout as the C compiler sees it (plugins may be written in C): checked at compile
 * time on x86_64, and listed for abi_layout_test.cpp to compare with the C++ compiler's view. */
#include "abi_layout.h"

#if defined(__x86_64__)
#define PRPC_CHECK_SIZE(T, n) _Static_assert(sizeof(T) == (n), "sizeof(" #T ") changed");
#define PRPC_CHECK_OFFSET(T, m, n) _Static_assert(offsetof(T, m) == (n), #T "." #m " moved");
PRPC_FROZEN_SIZES(PRPC_CHECK_SIZE)
PRPC_FROZEN_OFFSETS(PRPC_CHECK_OFFSET)
#endif

#define PRPC_SIZE_ROW(T, n) {"sizeof(" #T ")", sizeof(T)},
#define PRPC_OFFSET_ROW(T, m, n) {#T "." #m, offsetof(T, m)},
const prpc_layout_row prpc_layout_in_c[] = {
    PRPC_FROZEN_SIZES(PRPC_SIZE_ROW) PRPC_FROZEN_OFFSETS(PRPC_OFFSET_ROW)};
const size_t prpc_layout_in_c_count = sizeof(prpc_layout_in_c) / sizeof(prpc_layout_in_c[0]);
