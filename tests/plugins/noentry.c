/* A shared object without the entry symbol. */
int kq_test_not_an_entry(void);

int kq_test_not_an_entry(void)
{
	return 0;
}
