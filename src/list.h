/*
 * list.h - an intrusive doubly linked list: the links live in the object
 * (a `struct list` member), so linking and unlinking never allocate, and
 * an object finds its way back from its links with LIST_ELEM(). The list
 * is circular around its head, so that unlinking needs neither the head
 * nor a test for the first or last element: one way to unlink for every
 * list, instead of a hand-written one per list.
 *
 * A head is initialised with list_init() (or LIST_HEAD_INIT); an element's
 * links need not be until they are linked. list_del() leaves the element
 * linked to itself, so unlinking twice is harmless and list_linked() tells.
 */
#ifndef BOLLARD_LIST_H
#define BOLLARD_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
	struct list *prev, *next;
};

#define LIST_HEAD_INIT(name) { &(name), &(name) }

static inline void list_init(struct list *l)
{
	l->prev = l->next = l;
}

static inline bool list_empty(const struct list *head)
{
	return head->next == head;
}

/* Is e (initialised or once linked) in a list? */
static inline bool list_linked(const struct list *e)
{
	return e->next != e;
}

static inline void list_link_between(struct list *e, struct list *prev, struct list *next)
{
	e->prev = prev;
	e->next = next;
	prev->next = e;
	next->prev = e;
}

/* e becomes the first element of head. */
static inline void list_push(struct list *head, struct list *e)
{
	list_link_between(e, head, head->next);
}

/* e becomes the last element of head. */
static inline void list_append(struct list *head, struct list *e)
{
	list_link_between(e, head->prev, head);
}

static inline void list_del(struct list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	list_init(e);
}

/* The object of type `type` whose member `member` is the links l. */
#define LIST_ELEM(l, type, member) ((type *)(void *)((char *)(l) - offsetof(type, member)))

/* The first object of a non-empty list. */
#define LIST_FIRST(head, type, member) LIST_ELEM((head)->next, type, member)

/*
 * Every object of head, in order, as `it` (a pointer to type); `nx` holds
 * the next one's links, so the loop body may unlink `it` (and only it).
 */
#define LIST_FOR_EACH(it, nx, head, type, member)                                  \
	for (struct list *nx = (head)->next->next,                                   \
	     *nx##_cur_ = (head)->next;                                              \
	     nx##_cur_ != (head) && ((it) = LIST_ELEM(nx##_cur_, type, member), 1); \
	     nx##_cur_ = nx, nx = nx->next)

#endif
