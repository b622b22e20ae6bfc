int piwgate_answer(void) { return 42; }
