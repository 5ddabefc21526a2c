// Modules the PostgreSQL engine loader must refuse (tests/store/pgsql_module_test.cpp), built
// from this file twice: with RAMPART_FAKE_VERSION, the engine's entry points but another rampart
// version's; without it, none of them.
#if defined(RAMPART_FAKE_VERSION)
extern "C" [[gnu::visibility("default")]] const char* rampart_store_pgsql_version() {
  return RAMPART_FAKE_VERSION;
}
extern "C" [[gnu::visibility("default")]] void rampart_store_pgsql_open(const void*, const void*,
                                                                        void*) {}
#else
extern "C" [[gnu::visibility("default")]] int rampart_store_something_else() { return 0; }
#endif
