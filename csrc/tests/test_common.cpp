#include "check.h"
#include "common.h"

TEST_CASE("fail() throws invalid_argument with the message") {
  bool caught = false;
  try { emoedge::fail("n_fft=", 3, " must be a power of two"); }
  catch (const std::invalid_argument& e) { caught = std::string(e.what()) == "n_fft=3 must be a power of two"; }
  CHECK(caught);
}

TEST_MAIN()
