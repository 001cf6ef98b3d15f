#include "test.h"
TEST(placeholder) { ASSERT_EQ(1, 1); }
